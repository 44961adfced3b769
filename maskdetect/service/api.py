"""The JSON API: ``POST /predict``, ``POST /detect``, ``GET /health``, ``GET /openapi.json``."""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.exceptions import RequestEntityTooLarge

from ..core.crowd import CrowdAnalyzer, annotated_photo
from ..core.fetch import fetch_bytes
from ..core.images import decode_image
from ..core.inference import Predictor
from ..core.constants import (
    ANNOTATED_FORMATS,
    MAX_VIDEO_ANNOTATED_PIXELS,
    MAX_VIDEO_DECODED_PIXELS,
    MAX_VIDEO_FACES,
    MAX_VIDEO_FRAME_PIXELS,
    MAX_VIDEO_PROCESSED_FRAMES,
    MAX_VIDEO_SECONDS,
    VIDEO_PROCESS_FPS,
)
from ..core.requests import image_from_body, is_video, video_suffix
from ..core.video import VideoLimits, VideoTooLarge, open_video
from ..core.zones import Zones, parse_zones
from . import metrics
from .errors import ApiError
from .openapi import openapi_document

bp = Blueprint("api", __name__)

def predictor() -> Predictor:
    return current_app.extensions["maskdetect.predictor"]


def analyzer() -> CrowdAnalyzer:
    return current_app.extensions["maskdetect.analyzer"]


@bp.before_request
def chunked_body_within_limit():
    """413 for a chunked body (no Content-Length) over the limit, as for a declared one.

    Werkzeug refuses a declared Content-Length over MAX_CONTENT_LENGTH at once, but cuts a
    chunked body off at the limit without an error; reading (and caching, for the JSON and
    form parsers) up to the limit tells the two apart. A body of exactly the limit counts as over.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.method == "POST" and request.content_length is None and limit is not None:
        if len(request.get_data(cache=True)) >= limit:
            raise RequestEntityTooLarge()


def _image_from_request() -> bytes | str:
    """The uploaded bytes, or the URL to fetch, under the one request contract (maskdetect.core.requests)."""
    return image_from_body(request.content_type or "", request.get_data(cache=False))


def _image_bytes_from_request() -> bytes:
    """The image's bytes from any of the three forms; a URL is fetched under the service's rules."""
    image = _image_from_request()
    if isinstance(image, str):
        with metrics.url_fetch_in_flight():  # a worker fetching itself: gunicorn alone, Flask's test client
            return fetch_bytes(
                image, allow_private=current_app.config["ALLOW_PRIVATE_URLS"], limits=current_app.config["URL_LIMITS"]
            )
    return image


@bp.post("/predict")
def predict():
    return jsonify(predictor().predict(_image_bytes_from_request()).as_dict())


@bp.post("/detect")
def detect():
    """Every face, its label, the counts and close unmasked pairs; ``?format=jpeg`` (webp, png) draws them. A clip: see detect_video.

    The drawn photo is capped (ANNOTATED_MAX_SIDE, and ANNOTATED_PNG_MAX_PIXELS for the lossless PNG),
    so no answer is over 10 MB for nginx to buffer (documentation/service.md#annotated-photos-the-cap).
    """
    answer_format = request.args.get("format", "json")
    if is_video(request.content_type or ""):
        return detect_video(answer_format)
    if answer_format != "json" and answer_format not in ANNOTATED_FORMATS:
        raise ApiError(400, f"format={answer_format} is not offered for a photo; leave it out for JSON, or ask format=jpeg, "
                            "webp or png for the photo with its faces boxed")
    if "zone" in request.args or "ignore_zone" in request.args:
        raise ApiError(400, "zone= and ignore_zone= go with a video clip (a video/* body); a photo's faces are all counted: leave them out")
    image = decode_image(_image_bytes_from_request())
    analysis = analyzer().analyze(image)
    if answer_format == "json":
        return jsonify(analysis.as_dict())
    drawn, media_type = annotated_photo(image, analysis, answer_format)
    return send_file(io.BytesIO(drawn), mimetype=media_type, download_name=f"detected.{answer_format}")


ZONE_NAMES = ("zone", "ignore_zone")  # what the messages call each kind of zone


def _zones_from_request() -> Zones:
    """The ``zone=`` and ``ignore_zone=`` query parameters (each repeatable), checked: a ZoneError (400) says what is wrong."""
    return parse_zones(request.args.getlist("zone"), request.args.getlist("ignore_zone"), names=ZONE_NAMES)


CLIP_LIMITS = VideoLimits(MAX_VIDEO_SECONDS, MAX_VIDEO_FRAME_PIXELS, MAX_VIDEO_DECODED_PIXELS)
ANNOTATED_CLIP_LIMITS = VideoLimits(  # ?format=mp4 or webm: every frame is drawn and encoded too
    MAX_VIDEO_SECONDS, MAX_VIDEO_FRAME_PIXELS, MAX_VIDEO_ANNOTATED_PIXELS,
    hint=f"; or leave format out: a JSON answer may decode {MAX_VIDEO_DECODED_PIXELS / 1e6:.0f} megapixels",
)


def clip_stride(fps: float, frame_count: int | None) -> int:
    """Track every stride-th frame: about VIDEO_PROCESS_FPS a second, and at most MAX_VIDEO_PROCESSED_FRAMES in all.

    A clip whose container does not say its length counts as MAX_VIDEO_SECONDS long.
    """
    frames = frame_count if frame_count is not None else math.floor(fps * MAX_VIDEO_SECONDS)
    return max(1, round(fps / VIDEO_PROCESS_FPS), math.ceil(frames / MAX_VIDEO_PROCESSED_FRAMES))


class _FaceCount:
    """A clip's analyzer: the crowd analyzer, refusing the clip once its tracked frames showed over MAX_VIDEO_FACES faces."""

    def __init__(self, analyzer: CrowdAnalyzer, fps: float, stride: int):
        self.analyzer, self.fps, self.stride, self.frames, self.faces = analyzer, fps, stride, 0, 0

    def __getattr__(self, name: str):  # the camera, the predictor: the analyzer's
        return getattr(self.analyzer, name)

    def analyze(self, image):
        analysis = self.analyzer.analyze(image)
        self.frames, self.faces = self.frames + 1, self.faces + len(analysis.faces)
        if self.faces > MAX_VIDEO_FACES:
            # A shorter clip is tracked at the least stride: what length of it stays within the limit, at these faces a frame?
            tracked_per_s = self.fps / clip_stride(self.fps, 1)
            within = math.floor(MAX_VIDEO_FACES * self.frames / self.faces / tracked_per_s * 10) / 10
            raise VideoTooLarge(f"the video shows {self.faces} faces in the {self.frames} frames tracked in its first "
                                f"{self.frames * self.stride / self.fps:.1f} s, over the {MAX_VIDEO_FACES} a clip may show (each is "
                                f"classified in every frame tracked); send {f'at most {within:g} s of it, or ' if within else ''}"
                                "a clip with fewer people in view")
        return analysis


def detect_video(answer_format: str):
    """A clip's summary: unique people, unique unmasked people, close encounters, the share over time.

    ``?frames=1`` adds every processed frame's tracked faces; ``?format=mp4`` (or ``webm``, which
    browsers play) answers the clip with every face boxed instead. ``?zone=`` (and ``ignore_zone=``)
    counts only the people seen inside (see maskdetect.core.zones); the summary says which zones it used.
    """
    from ..core.tracking import analyze_video  # norfair and scipy: loaded by the workers that get a clip

    if answer_format not in ("json", "mp4", "webm"):
        raise ApiError(400, f"format={answer_format} is not offered for a video; leave it out for JSON, or ask format=mp4 (webm plays in a browser)")
    zones = _zones_from_request()
    data = request.get_data()
    if not data:
        raise ApiError(400, "the video is empty; send the file's bytes")
    with tempfile.TemporaryDirectory(prefix="maskdetect-clip-") as work:
        clip = Path(work) / f"clip{video_suffix(request.content_type or '')}"
        clip.write_bytes(data)
        out = Path(work) / f"detected.{answer_format}" if answer_format != "json" else None
        video = open_video(clip, limits=CLIP_LIMITS if out is None else ANNOTATED_CLIP_LIMITS, name="the video")
        zones.check_frame(video.size, ZONE_NAMES)
        stride, frames = clip_stride(video.fps, video.frame_count), []

        def on_frame(result) -> None:
            frames.append(result)
            if len(frames) > MAX_VIDEO_PROCESSED_FRAMES + 1:  # +1: a frame at exactly MAX_VIDEO_SECONDS
                raise VideoTooLarge("the video holds more frames than its container says; re-encode it "
                                    f"(e.g. ffmpeg -i clip.mp4 fixed.mp4) and send at most {MAX_VIDEO_SECONDS:g} s")

        tracker = analyze_video(video, _FaceCount(analyzer(), video.fps, stride), stride, out=out, on_frame=on_frame,
                                 zone=None if zones.everywhere else zones)
        if out is not None:
            return send_file(io.BytesIO(out.read_bytes()), mimetype=f"video/{answer_format}", download_name=out.name)
    summary = tracker.summary()
    summary["zones"] = zones.as_dict()
    if request.args.get("frames") in ("1", "true", "yes"):
        people = {person["id"] for person in summary["people"]}
        summary["tracked_frames"] = [frame.as_dict(people) for frame in frames]
    return jsonify(summary)


@bp.get("/health")
def health():
    return jsonify(status="ok", model=predictor().name)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(current_app))
