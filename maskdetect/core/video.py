"""Video in and out through OpenCV's bundled FFmpeg: files, folders of frames, cameras and streams.

:func:`open_video` gives a :class:`VideoSource` whatever the source; iterating it yields
``(index, frame)`` with the frame as an RGB PIL image, and ``frames(stride)`` every stride-th frame
only: the ones between are passed over without being converted (``grab()``) or, in a folder, read.
A file that is damaged or in a format this FFmpeg cannot decode is a :class:`VideoError` that says
so, never a hang: streams have open and read timeouts. A clip over its :class:`VideoLimits` (length,
pixels per frame, pixels decoded in all) is refused before its first frame is decoded when its
container tells, else at the first frame past them.
Stream URLs (``rtsp://``, ``http(s)://``) follow the image URLs' address rules (public addresses
only unless ``allow_private``), but only as a best-effort check of the URL as given: FFmpeg then
resolves the host again and follows redirects, RTSP redirects and playlists (HLS) on its own, and
OpenCV offers no option that pins the address or turns those off for every protocol. The operator
runs ``maskdetect watch``; no caller of the service can name a stream (POST /detect takes a clip's bytes).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .constants import MAX_IMAGE_PIXELS, MAX_VIDEO_SECONDS
from .fetch import parse_url, resolve
from .files import atomic_path, class_files
from .images import IMAGE_SUFFIXES, decode_image

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
DEFAULT_FPS = 25.0  # a folder of frames, or a file that does not say
TIMEOUT_S = 10.0  # to open a stream, and for each read
WRITERS = {".mp4": "mp4v", ".webm": "VP80"}  # what this OpenCV's FFmpeg can encode (no H.264 encoder)


class VideoError(RuntimeError):
    """The video cannot be read or written; the message says what to do."""


class VideoTooLong(VideoError):
    """The clip is longer than its limit."""


class VideoTooLarge(VideoError):
    """The clip's frames are over the pixel limit, or all its frames together are over the decoded-pixel limit."""


@dataclass(frozen=True)
class VideoLimits:
    """What a source may hold; the messages of its errors say what to send instead."""

    max_seconds: float | None = MAX_VIDEO_SECONDS  # None: no limit (a camera)
    max_pixels: int = MAX_IMAGE_PIXELS  # per frame
    max_decoded_pixels: int | None = None  # every frame's pixels summed, skipped ones too: FFmpeg decodes them all
    hint: str = ""  # what else the caller may do, after a message about max_decoded_pixels

    def largest_frame(self) -> str:
        """The largest 16:9 frame within ``max_pixels``, as WxH."""
        width = math.isqrt(self.max_pixels * 16 // 9)
        return f"{width}x{width * 9 // 16}"

    def check_frame(self, name: str, size: tuple[int, int]) -> None:
        """VideoTooLarge for a frame over ``max_pixels``."""
        if size[0] * size[1] <= self.max_pixels:
            return
        advice = f"up to {self.largest_frame()}"
        if self.max_seconds is not None:
            advice = f"at most {self.max_seconds:g} s at {advice}"
            if self.max_decoded_pixels is not None:
                advice += f" and {math.floor(self.max_decoded_pixels / (self.max_pixels * self.max_seconds))} frames a second"
        raise VideoTooLarge(f"{name}'s frames are {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.2g} megapixels), over the "
                            f"{self.max_pixels / 1e6:.2g}-megapixel limit per frame; send {advice}")

    def check_decoded(self, name: str, fps: float, size: tuple[int, int], frames: int, *, so_far: str = "") -> None:
        """VideoTooLarge when ``frames`` frames of ``size`` are over ``max_decoded_pixels``; ``so_far``: counted while reading."""
        pixels = frames * size[0] * size[1]
        if self.max_decoded_pixels is None or pixels <= self.max_decoded_pixels:
            return
        within = self.max_decoded_pixels / (size[0] * size[1])  # frames
        what = f"{name} {'reaches' if so_far else 'is'} {frames} frames of {size[0]}x{size[1]}{so_far}"
        advice = f"send at most {math.floor(within / fps * 10) / 10:g} s of it"
        if self.max_seconds is not None:
            advice += f", or {self.max_seconds:g} s at up to {math.floor(within / self.max_seconds)} frames a second at this size"
        raise VideoTooLarge(f"{what}, {pixels / 1e6:.0f} megapixels to decode, over the {self.max_decoded_pixels / 1e6:.0f}-"
                            f"megapixel limit; {advice}{self.hint}")


class Frames:
    """Where a :class:`VideoSource`'s frames come from: :meth:`read` the next one, or :meth:`skip` it."""

    def __init__(self, frames: Iterator[np.ndarray]):
        self._frames = frames

    def read(self) -> np.ndarray | None:
        """The next frame as an RGB array; None at the end."""
        return next(self._frames, None)

    def skip(self) -> bool:
        """Pass over the next frame as cheaply as the source allows; False at the end."""
        return next(self._frames, None) is not None

    def close(self) -> None:
        pass


class _CapturedFrames(Frames):
    """An OpenCV capture: ``grab()`` for every frame, ``retrieve()`` and the conversion to RGB for those read only."""

    def __init__(self, capture: cv2.VideoCapture):
        self._capture = capture

    def read(self) -> np.ndarray | None:
        ok, bgr = self._capture.retrieve() if self._capture.grab() else (False, None)
        if not ok:
            self.close()
            return None
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def skip(self) -> bool:
        if self._capture.grab():
            return True
        self.close()
        return False

    def close(self) -> None:
        self._capture.release()


class _FolderFrames(Frames):
    """A folder of images: a skipped file is never opened."""

    def __init__(self, paths: list[Path]):
        self._paths = iter(paths)

    def read(self) -> np.ndarray | None:
        path = next(self._paths, None)
        return None if path is None else np.asarray(decode_image(path).convert("RGB"))

    def skip(self) -> bool:
        return next(self._paths, None) is not None


class VideoSource:
    """Frames from a file, a folder of images, a camera or a stream, with their rate and size.

    ``frames_of`` is a :class:`Frames` or any iterator of RGB arrays; ``max_frames`` stops the
    video after that many frames (its first ones), as if it ended there.
    """

    def __init__(
        self,
        name: str,
        frames_of: Frames | Iterator[np.ndarray],
        fps: float,
        frame_count: int | None,
        limits: VideoLimits,
        *,
        max_frames: int | None = None,
    ):
        if max_frames is not None and max_frames < 1:
            raise ValueError("max_frames must be 1 or more")
        if max_frames is not None and frame_count is not None:
            frame_count = min(frame_count, max_frames)
        self.name, self.fps, self.frame_count, self.limits, self.max_frames = name, fps, frame_count, limits, max_frames
        self._frames = frames_of if isinstance(frames_of, Frames) else Frames(frames_of)
        first = self._frames.read()
        if first is None:
            raise VideoError(f"{name} has no frame this build can decode: it is damaged, empty, or in a format OpenCV's "
                             "FFmpeg lacks; send an MP4 (H.264 or MPEG-4) or WebM clip")
        self.size = (first.shape[1], first.shape[0])
        limits.check_frame(name, self.size)
        self._first = first
        if frame_count is not None and limits.max_seconds is not None and frame_count / fps > limits.max_seconds + 1 / fps:
            raise VideoTooLong(self._too_long())
        if frame_count is not None:
            limits.check_decoded(name, fps, self.size, frame_count)
        self.decoded_pixels = 0  # of the frames passed so far, read or skipped, each at the size of the last one read
        self._frame_size = self.size

    def _too_long(self) -> str:
        return f"{self.name} is longer than the {self.limits.max_seconds:g} s limit; send a clip of at most {self.limits.max_seconds:g} s"

    def __iter__(self) -> Iterator[tuple[int, Image.Image]]:
        return self.frames()

    def frames(self, stride: int = 1) -> Iterator[tuple[int, Image.Image]]:
        """``(index, frame)`` of frames 0, stride, 2 stride...; the frames between are skipped, never converted."""
        if stride < 1:
            raise ValueError("stride must be 1 or more")
        index, frame = 0, self._first
        self._count(index, frame)
        try:
            while frame is not None:
                yield index, Image.fromarray(frame)
                for index in range(index + 1, index + stride):
                    if self._advance(index, keep=False) is None:
                        return
                index += 1
                frame = self._advance(index, keep=True)
        finally:
            self._frames.close()

    def _advance(self, index: int, *, keep: bool) -> np.ndarray | bool | None:
        """Frame ``index`` read (an array) or skipped (True); None past the end or ``max_frames``; VideoTooLong past the limit."""
        if self.max_frames is not None and index >= self.max_frames:
            return None
        frame = self._frames.read() if keep else (self._frames.skip() or None)
        if frame is not None:
            if self.limits.max_seconds is not None and index / self.fps > self.limits.max_seconds:
                raise VideoTooLong(self._too_long())
            self._count(index, frame)
        return frame

    def _count(self, index: int, frame: np.ndarray | bool) -> None:
        """Frame ``index`` (an array, or True when skipped) against the limits on pixels: a frame's, and all frames' so far."""
        if isinstance(frame, np.ndarray):
            self._frame_size = (frame.shape[1], frame.shape[0])
            self.limits.check_frame(self.name, self._frame_size)  # a stream may change size on the way
        self.decoded_pixels += self._frame_size[0] * self._frame_size[1]
        if self.limits.max_decoded_pixels is not None and self.decoded_pixels > self.limits.max_decoded_pixels:
            said = f", more than the {self.frame_count} its container says" if self.frame_count is not None else ""
            self.limits.check_decoded(self.name, self.fps, self._frame_size, index + 1, so_far=said or " by now")


def _rate(capture: cv2.VideoCapture, fps: float | None) -> float:
    reported = capture.get(cv2.CAP_PROP_FPS)
    return fps or (reported if math.isfinite(reported) and 0 < reported <= 240 else DEFAULT_FPS)


def open_video(
    source: str | os.PathLike | int,
    *,
    fps: float | None = None,
    allow_private: bool = False,
    limits: VideoLimits = VideoLimits(),
    name: str | None = None,
    max_frames: int | None = None,
) -> VideoSource:
    """A video file, a folder of frames (in natural order), a camera index or a stream URL.

    ``fps`` overrides the rate the source reports (a folder has none: 25); ``name`` is what
    messages call it (default: the path or URL); ``max_frames`` ends the video after its first
    ``max_frames`` frames (a quick look at a long clip).
    """
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(TIMEOUT_S * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(TIMEOUT_S * 1000)]
    if isinstance(source, int):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise VideoError(f"camera {source} cannot be opened: check that it is connected and not in use")
        return VideoSource(f"camera {source}", _CapturedFrames(capture), _rate(capture, fps), None, limits, max_frames=max_frames)
    text = str(source)
    if "://" in text:
        target = parse_url(text, STREAM_SCHEMES)
        resolve(target.host, target.port, allow_private=allow_private, timeout=TIMEOUT_S)  # best-effort: FFmpeg resolves again
        capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, timeouts)
        if not capture.isOpened():
            raise VideoError(f"{text} cannot be opened as a video stream: check the URL and that the stream is live")
        return VideoSource(text, _CapturedFrames(capture), _rate(capture, fps), None, limits, max_frames=max_frames)
    path = Path(source)
    if path.is_dir():
        frames = class_files(path.parent, path.name, IMAGE_SUFFIXES)
        if not frames:
            raise VideoError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return VideoSource(str(path), _FolderFrames(frames), fps or DEFAULT_FPS, len(frames), limits, max_frames=max_frames)
    if not path.is_file():
        raise VideoError(f"no such file or folder: {path}")
    name = name or str(path)
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, timeouts)
    if not capture.isOpened():
        raise VideoError(f"{name} is not a video this build can read (damaged, or a format OpenCV's FFmpeg lacks); "
                         "send an MP4 (H.264 or MPEG-4) or WebM clip")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    count, rate = count if count > 0 else None, _rate(capture, fps)
    reported = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    try:
        if min(reported) > 0:  # what the container says, checked before a frame is decoded
            limits.check_frame(name, reported)
            if count is not None:
                limits.check_decoded(name, rate, reported, count if max_frames is None else min(count, max_frames))
        return VideoSource(name, _CapturedFrames(capture), rate, count, limits, max_frames=max_frames)
    except VideoError:
        capture.release()
        raise


@contextmanager
def video_writer(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> Iterator[Callable[[Image.Image], None]]:
    """A function that appends a frame to ``path`` (``.mp4``: MPEG-4 part 2; ``.webm``: VP8), kept only when the block succeeds."""
    path = Path(path)
    fourcc = WRITERS.get(path.suffix.lower())
    if fourcc is None:
        raise VideoError(f"cannot write {path.name}: give a .mp4 or .webm file name")
    with atomic_path(path) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise VideoError(f"OpenCV cannot write {path.suffix} video here; try the other of .mp4 and .webm")
        try:
            yield lambda frame: writer.write(cv2.cvtColor(np.asarray(frame.convert("RGB")), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
