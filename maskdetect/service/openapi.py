"""The OpenAPI 3.1 description of the service, served at ``GET /openapi.json``.

Written out by hand (the API is five routes) and checked by the tests against the
OpenAPI schema, against the routes the application really has, and (schemathesis) against its answers.

The answers speak three labels (``constants.LABELS``): what the two fields of the two-class API,
``with_mask`` and ``without_mask``, mean from now on is stated once, in :data:`THREE_CLASSES`, and
repeated wherever a probability or a count is described.
"""

from __future__ import annotations

from importlib import metadata

from flask import Flask

from ..core import constants, zones
from ..core.video import VideoLimits


URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$"

# The decision on the fields, for every answer that carries the three probabilities.
THREE_CLASSES = (
    "Three calibrated probabilities that sum to 1: `with_mask`, p(a mask worn over nose and mouth); `incorrect`, "
    "p(a mask worn below the nose or on the chin); `without_mask`, p(no mask). `label` is the most probable of the three "
    "as shown (6 decimals; a tie goes to the earlier of with_mask, incorrect, without_mask), so it always agrees with the "
    "numbers in the answer. For clients of the two-class API: `with_mask` keeps its meaning, so reading `label == "
    '"with_mask"` or `with_mask >= 0.5` as "masked properly" stays correct (a probability of 0.5 or more is the most '
    "probable; the label may also be with_mask below 0.5, when the other two share the rest). `without_mask` now means no "
    "mask at all and is no longer `1 - with_mask`: \"not masked properly\" is `label != \"with_mask\"`, or `1 - with_mask` "
    "for its probability. A model trained on two classes answers `incorrect` 0."
)


def _probability(what: str) -> dict:
    return {"type": "number", "minimum": 0, "maximum": 1, "description": what}


PROBABILITIES = {
    "with_mask": _probability("p(a mask worn over nose and mouth)"),
    "incorrect": _probability("p(a mask worn below the nose or on the chin)"),
    "without_mask": _probability("p(no mask); not 1 - with_mask"),
}
LABEL = {"type": "string", "enum": list(constants.LABELS), "description": "the most probable of the three"}
COUNTS = {
    label: {"type": "integer", "minimum": 0, "description": f"faces labelled {label}"} for label in constants.LABELS
}
NOT_MASKED = "not masked (labelled incorrect or without_mask)"
ZONE_LIST = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2, "description": "a corner: x, y"},
    "minItems": 3,
    "description": "one zone's corners, in order around it, in pixels of the frame",
}
TRACK = {
    "type": "object",
    "required": ["id", "label", *constants.LABELS, "frames", "first_s", "last_s"],
    "properties": {
        "id": {"type": "integer", "minimum": 0, "description": "the track's id, as in tracked_frames"},
        "label": LABEL,
        **{label: _probability(f"{PROBABILITIES[label]['description']}, pooled over the track's frames") for label in constants.LABELS},
        "frames": {"type": "integer", "minimum": 1, "description": "processed frames the face was found in"},
        "first_s": {"type": "number", "minimum": 0},
        "last_s": {"type": "number", "minimum": 0},
    },
}  # a clip's person, or picture
BOX = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 4,
    "maxItems": 4,
    "description": "xmin, ymin, xmax, ymax in displayed pixels (max exclusive)",
}


LARGEST_FRAME = VideoLimits(max_pixels=constants.MAX_VIDEO_FRAME_PIXELS).largest_frame()
CLIP_LIMITS = (  # what a clip may cost: maskdetect.core.constants, documentation/service.md
    f"A clip may be {constants.MAX_VIDEO_SECONDS:g} s long, its frames up to {LARGEST_FRAME} "
    f"({constants.MAX_VIDEO_FRAME_PIXELS / 1e6:.2g} megapixels), all its frames together "
    f"{constants.MAX_VIDEO_DECODED_PIXELS / 1e6:.0f} megapixels to decode ({constants.MAX_VIDEO_SECONDS:g} s of {LARGEST_FRAME} at "
    f"{constants.MAX_VIDEO_DECODED_PIXELS / constants.MAX_VIDEO_FRAME_PIXELS / constants.MAX_VIDEO_SECONDS:g} fps), or "
    f"{constants.MAX_VIDEO_ANNOTATED_PIXELS / 1e6:.1f} megapixels with `format=mp4` or `webm`, which draws and encodes every frame. "
    f"About {constants.VIDEO_PROCESS_FPS:g} frames a second are tracked, at most {constants.MAX_VIDEO_PROCESSED_FRAMES} "
    "in all (a longer clip is tracked at a larger `stride`; one whose container does not state its length counts as "
    f"{constants.MAX_VIDEO_SECONDS:g} s long), and those frames may show {constants.MAX_VIDEO_FACES} faces in all. A clip "
    "over a limit its container states is refused before it is decoded; one that holds more than it states is stopped "
    "at the limit: a 422 that says what to send instead. 413 is for a body over the size limit only."
)


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(app: Flask) -> dict:
    limits = app.config["URL_LIMITS"]
    body_mb = app.config["MAX_CONTENT_LENGTH"] / 1024 / 1024
    try:
        version = metadata.version("maskdetect")
    except metadata.PackageNotFoundError:
        version = "0"
    binary = {"type": "string", "format": "binary"}
    image_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"$ref": "#/components/schemas/UrlRequest"}, {"$ref": "#/components/schemas/ImageRequest"}]},
                "examples": {
                    "url": {"value": {"url": "https://example.com/photo.jpg"}},
                    "image": {"value": {"image": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {**binary, "description": "the image file"}},
                },
                "encoding": {"image": {"contentType": "image/*"}},
            },
            "image/*": {"schema": {**binary, "description": "the image file's bytes"}},
        },
    }
    input_errors = {
        "400": _error("invalid JSON, no url or image, an empty image, or a refused URL"),
        "413": _error(f"the request body is over {body_mb:g} MB"),
        "415": _error("the Content-Type is none of application/json, multipart/form-data, image/* (a video/* clip goes to /detect)"),
        "422": _error(
            "the bytes (uploaded or fetched) are not a readable image, the image is over the "
            "pixel limit, or the image at the URL is over the size limit"
        ),
        "500": _error("a fault of the service itself (logged)"),
        "502": _error(
            "the URL could not be fetched: no such host, refused connection, TLS failure, an HTTP error status, too many "
            "redirects; or, behind `maskdetect serve`, the worker serving the request stopped (with Retry-After)"
        ),
        "503": {
            **_error("the service is busy: the request waited for a worker longer than the queue budget (MASKDETECT_QUEUE_BUDGET_S)"),
            "headers": {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}},
        },
        "504": _error("the URL's host did not connect or answer in time"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "maskdetect",
            "version": version,
            "summary": "Does the face in a photo wear a mask, and wear it right? Who in a crowd does not?",
            "description": (
                "A face-mask classifier with three labels: `with_mask` (a mask over nose and mouth), `incorrect` "
                "(a mask below the nose or on the chin) and `without_mask` (no mask). `/predict` answers for the largest "
                "face in a photo, `/detect` for every face in a photo or a video clip. Send the image itself or an "
                'http(s) URL of it. Every error answers `{"error": "..."}` saying what was wrong and what to do. '
                + THREE_CLASSES
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Classify one image",
                    "description": (
                        "The largest face found in the photo is classified, cropped as the training crops are "
                        "(`face` is its box in pixels of the image as displayed). A quick look at the photo reduced to "
                        f"{constants.SUBJECT_DECODE_SIDE} px finds a large face; when it finds none, a second look at 1x "
                        "and 2x finds a small one. The whole photo is classified when neither finds a face (`face` is "
                        "null) or when the service runs with MASKDETECT_FACE_CENTRED=0. "
                        "The image comes as JSON `{\"url\": ...}` or `{\"image\": \"<base64>\"}`, as a multipart form field `image`, or as "
                        f"the raw body with an `image/*` content type. Request bodies are limited to {body_mb:g} MB. "
                        "A URL must be http or https and resolve to public addresses only (no loopback, "
                        "private, link-local, multicast, reserved or unspecified address, in any notation); "
                        f"at most {limits.max_redirects} redirects are followed, each checked again; the fetch "
                        f"has {limits.connect_timeout:g} s to connect and {limits.total_timeout:g} s in all, and "
                        f"the image may be {limits.max_bytes / 1024 / 1024:g} MB at most. Images over "
                        f"{constants.MAX_IMAGE_PIXELS / 1e6:g} megapixels are refused before decoding."
                    ),
                    "requestBody": image_body,
                    "responses": {
                        "200": {
                            "description": "the answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}},
                        },
                        **input_errors,
                    },
                }
            },
            "/detect": {
                "post": {
                    "operationId": "detect",
                    "summary": "Find every face in a photo or a clip, label each, count those not masked and the close pairs",
                    "description": (
                        "A photo comes in the same three forms as for `/predict`, under the same limits. Every face "
                        "the detector finds is classified (the three probabilities and the label, as `/predict` answers "
                        "them); `with_mask`, `incorrect` and `without_mask` at the top level count the faces of each label. "
                        "Boxes are `[xmin, ymin, xmax, ymax]` in pixels of the image as displayed (EXIF orientation applied). "
                        f"`unmasked_ratio` is the share {NOT_MASKED} among the faces the detector is sure of (`counted`), null "
                        f"when no face is found. `close_pairs` lists pairs of faces {NOT_MASKED} (indices into `faces`) "
                        f"estimated closer than {constants.CLOSE_DISTANCE_M:g} m, from a pinhole camera model that "
                        f"assumes every face is {constants.FACE_WIDTH_M * 100:g} cm wide and a "
                        f"{constants.CAMERA_FOV_DEG:g} degree horizontal field of view: rough estimates. "
                        "With `format=jpeg`, `webp` or `png` the answer is the image with the boxes drawn (green with_mask, amber "
                        "incorrect, red without_mask, labelled with the face's index and p(with_mask)), shrunk to at most "
                        f"{constants.ANNOTATED_MAX_SIDE} px a side (a lossless `png` also to at most "
                        f"{constants.ANNOTATED_PNG_MAX_PIXELS / 1e6:g} megapixels, so it stays under 10 MB): the boxes of the JSON answer "
                        "are in the original's pixels. "
                        "A video clip (the body, with its `video/*` Content-Type) is tracked instead: each person keeps an id across frames, "
                        "is labelled from all their frames and counted once (`people`, `people_by_label`); "
                        f"`unique_unmasked_people` counts the people {NOT_MASKED}; `close_encounters` are pairs of them "
                        f"that stood closer than {constants.CLOSE_DISTANCE_M:g} m; `frames=1` adds each processed frame's "
                        "tracked faces, and `format=mp4` (or `webm`, which browsers play) answers the clip with every face "
                        "boxed. `jpeg`, `webp` and `png` go with a photo only, `mp4` and `webm` with a clip only: the other pairings are a 400. "
                        + CLIP_LIMITS + " "
                        "For a fixed camera, `zone` says where a clip's people are counted: a person counts once their face's "
                        "centre was seen inside a `zone` (anywhere, without one) and outside every `ignore_zone`; the answer's "
                        "`zones` lists those used. Zones go with a clip only."
                    ),
                    "parameters": [
                        {
                            "name": "format",
                            "in": "query",
                            "required": False,
                            "description": "`json` (default); `jpeg`, `webp` or `png` (a photo annotated, capped); `mp4` or `webm` (a clip annotated)",
                            "schema": {"type": "string", "enum": ["json", *constants.ANNOTATED_FORMATS, "mp4", "webm"], "default": "json"},
                        },
                        {
                            "name": "frames",
                            "in": "query",
                            "required": False,
                            "description": "`1`, `true` or `yes`: a clip's JSON answer also lists every processed frame's tracked "
                            "faces (`tracked_frames`); any other value, or none, does not (a photo's answer ignores it)",
                            "schema": {"type": "string", "examples": ["1"]},
                        },
                        {
                            "name": "zone",
                            "in": "query",
                            "required": False,
                            "description": f"a clip only: count only the people seen in this polygon, given as {zones.SYNTAX} "
                            "(in the URL: `zone=10,10+600,10+600,300+10,300`), in pixels of the video's frame from its top "
                            "left, at least 3 corners, not crossing itself, within the frame; repeat the parameter for "
                            f"several zones (at most {zones.MAX_ZONES}). Any other value is a 400 that says what is wrong and where.",
                            "style": "form",
                            "explode": True,
                            "schema": {"type": "array", "items": {"type": "string"}, "maxItems": zones.MAX_ZONES, "examples": [[zones.EXAMPLE]]},
                        },
                        {
                            "name": "ignore_zone",
                            "in": "query",
                            "required": False,
                            "description": "a clip only: leave out the faces seen in this polygon (a poster, a window), in the form "
                            "of `zone`; repeatable",
                            "style": "form",
                            "explode": True,
                            "schema": {"type": "array", "items": {"type": "string"}, "maxItems": zones.MAX_ZONES,
                                       "examples": [["0,0 100,0 100,80 0,80"]]},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            **image_body["content"],
                            "video/*": {"schema": {**binary, "description": "a video clip's bytes (MP4, WebM, ...)"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "a photo's faces and counts, or a clip's people; the annotated photo or video with format",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": "#/components/schemas/Detection"},
                                            {"$ref": "#/components/schemas/ClipSummary"},
                                        ]
                                    }
                                },
                                **{media_type: {"schema": {**binary, "description": "the annotated photo"}}
                                   for _, media_type, _ in constants.ANNOTATED_FORMATS.values()},
                                "video/mp4": {"schema": {**binary, "description": "the annotated clip"}},
                                "video/webm": {"schema": {**binary, "description": "the annotated clip"}},
                            },
                        },
                        **input_errors,
                        "415": _error("the Content-Type is none of application/json, multipart/form-data, image/*, video/*"),
                        "400": _error(
                            "a format that does not go with the body (jpeg, webp or png with a clip, mp4 or webm with a photo, any other), "
                            "invalid JSON, no url or image, an empty image or clip, a refused URL, a zone that is no polygon "
                            "or runs outside the clip's frame, or a zone with a photo"
                        ),
                        "422": _error(
                            "the bytes (uploaded or fetched) are not a readable image, the image is over the pixel limit, or "
                            "the image at the URL is over the size limit; a clip that cannot be decoded, is over "
                            f"{constants.MAX_VIDEO_SECONDS:g} s, has frames over {constants.MAX_VIDEO_FRAME_PIXELS / 1e6:.2g} "
                            "megapixels or more pixels to decode than the limit, or shows more faces than the limit in the "
                            "frames tracked (the message says what to send instead)"
                        ),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether the service is up, and which model it serves",
                    "responses": {
                        "200": {
                            "description": "the model is loaded",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics: requests answered, in flight and shed, their wait for a worker, URL fetches",
                    "description": (
                        "Prometheus' text format, summed over every worker behind `maskdetect serve`. Never shed. "
                        "maskdetect_queue_wait_seconds (histogram): the wait between nginx and a worker; "
                        "maskdetect_requests_in_flight: requests workers hold now; maskdetect_worker_busy_seconds_total: their time "
                        "in requests (its rate: the busy workers); maskdetect_requests_total{endpoint, status}; "
                        "maskdetect_requests_shed_total; maskdetect_url_fetches_in_flight."
                    ),
                    "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
                }
            },
            "/": {
                "get": {
                    "operationId": "page",
                    "summary": "A web page: choose a file or paste an image URL, see the answer",
                    "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                }
            },
        },
        "components": {
            "schemas": {
                "UrlRequest": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {
                        "url": {
                            "type": "string",
                            "format": "uri",
                            # what maskdetect.core.fetch.parse_url takes: http or https, a host, no user name
                            "pattern": URL_PATTERN,
                            "description": "an http(s) URL of an image, without a user name or password",
                        }
                    },
                },
                "ImageRequest": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "byte",
                            "description": "the image file, base64-encoded (standard alphabet; a data: URL prefix and line breaks are allowed)",
                        }
                    },
                },
                "Prediction": {
                    "type": "object",
                    "description": THREE_CLASSES,
                    "required": ["label", "with_mask", "incorrect", "without_mask", "model", "face"],
                    "properties": {
                        "label": LABEL,
                        **PROBABILITIES,
                        "model": {"type": "string", "description": "the model's name and version"},
                        "face": {
                            "description": "the face classified, [xmin, ymin, xmax, ymax] in pixels of the image as "
                            "displayed; null when the whole image was classified",
                            "oneOf": [
                                {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4},
                                {"type": "null"},
                            ],
                        },
                    },
                    "example": {
                        "label": "incorrect",
                        "with_mask": 0.12,
                        "incorrect": 0.81,
                        "without_mask": 0.07,
                        "model": "cnn4-1a2b3c4d-seed1",
                        "face": [212, 96, 371, 288],
                    },
                },
                "Detection": {
                    "type": "object",
                    "required": ["faces", "total", *constants.LABELS, "unmasked_ratio", "counted", "close_pairs", "model"],
                    "properties": {
                        "faces": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "description": "one face: its box, the detector's score, and the classifier's answer as /predict gives it",
                                "required": ["box", "score", "label", *constants.LABELS],
                                "properties": {
                                    "box": BOX,
                                    "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "the detector's confidence"},
                                    "label": LABEL,
                                    **PROBABILITIES,
                                },
                            },
                        },
                        "total": {"type": "integer", "minimum": 0, "description": "faces found: the sum of the three counts"},
                        **COUNTS,
                        "unmasked_ratio": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "maximum": 1,
                            "description": f"the share of counted faces {NOT_MASKED}: faces scored at least "
                            f"{constants.SHARE_MIN_SCORE:g} by the detector, or every face when none is",
                        },
                        "counted": {"type": "integer", "minimum": 0, "description": "how many faces unmasked_ratio counts"},
                        "close_pairs": {
                            "type": "array",
                            "description": f"pairs of faces {NOT_MASKED} estimated closer than {constants.CLOSE_DISTANCE_M:g} m, nearest first",
                            "items": {
                                "type": "object",
                                "required": ["a", "b", "distance_m"],
                                "properties": {
                                    "a": {"type": "integer", "minimum": 0, "description": "index into faces"},
                                    "b": {"type": "integer", "minimum": 0, "description": "index into faces"},
                                    "distance_m": {"type": "number", "minimum": 0, "description": "estimated distance"},
                                },
                            },
                        },
                        "model": {"type": "string", "description": "the classifier's name and version"},
                    },
                    "example": {
                        "faces": [
                            {"box": [79, 100, 108, 137], "score": 0.9987, "label": "without_mask", "with_mask": 0.03, "incorrect": 0.05, "without_mask": 0.92},
                            {"box": [120, 98, 150, 134], "score": 0.9921, "label": "incorrect", "with_mask": 0.11, "incorrect": 0.8, "without_mask": 0.09},
                            {"box": [300, 90, 336, 133], "score": 0.9712, "label": "with_mask", "with_mask": 0.96, "incorrect": 0.03, "without_mask": 0.01},
                        ],
                        "total": 3,
                        "with_mask": 1,
                        "incorrect": 1,
                        "without_mask": 1,
                        "unmasked_ratio": 0.6667,
                        "counted": 3,
                        "close_pairs": [{"a": 0, "b": 1, "distance_m": 0.64}],
                        "model": "cnn4-1a2b3c4d-seed1",
                    },
                },
                "ClipSummary": {
                    "type": "object",
                    "description": "A clip's people, each counted once, labelled from all their frames; "
                    f"those {NOT_MASKED} are the unmasked.",
                    "required": [
                        "frames", "seconds", "fps", "stride", "unique_people", "unique_unmasked_people", "unmasked_share",
                        "people_by_label", "people", "pictures", "close_encounters", "share_over_time", "model", "zones",
                    ],
                    "properties": {
                        "frames": {"type": "integer", "minimum": 0, "description": "frames processed"},
                        "seconds": {"type": "number", "minimum": 0},
                        "fps": {"type": "number", "minimum": 0, "description": "the clip's frame rate"},
                        "stride": {"type": "integer", "minimum": 1, "description": "one frame processed in this many"},
                        "unique_people": {"type": "integer", "minimum": 0},
                        "unique_unmasked_people": {"type": "integer", "minimum": 0, "description": f"people {NOT_MASKED}"},
                        "unmasked_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                           "description": "unique_unmasked_people / unique_people; null without people"},
                        "people_by_label": {
                            "type": "object",
                            "required": list(constants.LABELS),
                            "properties": {label: {"type": "integer", "minimum": 0} for label in constants.LABELS},
                            "description": "people per label: their sum is unique_people",
                        },
                        "people": {"type": "array", "items": TRACK},
                        "pictures": {"type": "array", "items": TRACK,
                                     "description": "faces fixed to the scene (posters, screens): not counted as people, in the share or in encounters"},
                        "close_encounters": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["people", "start_s", "end_s", "duration_s", "closest_m"],
                                "properties": {
                                    "people": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
                                    "start_s": {"type": "number", "minimum": 0},
                                    "end_s": {"type": "number", "minimum": 0},
                                    "duration_s": {"type": "number", "minimum": 0},
                                    "closest_m": {"type": "number", "minimum": 0},
                                },
                            },
                        },
                        "share_over_time": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["start_s", "end_s", "people", "unmasked", "unmasked_share", "close_unmasked_pairs"],
                                "properties": {
                                    "start_s": {"type": "number", "minimum": 0},
                                    "end_s": {"type": "number", "minimum": 0},
                                    "people": {"type": "integer", "minimum": 0, "description": "people in view"},
                                    "unmasked": {"type": "integer", "minimum": 0, "description": f"of them, {NOT_MASKED}"},
                                    "unmasked_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                                    "close_unmasked_pairs": {"type": "integer", "minimum": 0},
                                },
                            },
                        },
                        "model": {"type": "string", "description": "the classifier's name and version"},
                        "zones": {
                            "type": "object",
                            "required": ["include", "ignore"],
                            "properties": {
                                "include": {"type": "array", "items": ZONE_LIST, "description": "the zone= polygons; none: everywhere"},
                                "ignore": {"type": "array", "items": ZONE_LIST, "description": "the ignore_zone= polygons"},
                            },
                            "description": "where people were counted: the zones of the request, as corner lists",
                        },
                        "tracked_frames": {
                            "type": "array",
                            "description": "with frames=true: each processed frame's tracked faces",
                            "items": {
                                "type": "object",
                                "required": ["frame", "t", "faces", "close_pairs"],
                                "properties": {
                                    "frame": {"type": "integer", "minimum": 0},
                                    "t": {"type": "number", "minimum": 0, "description": "seconds from the start"},
                                    "faces": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": [
                                                "id", "box", "score", "label", *constants.LABELS,
                                                "track_label", *(f"track_{label}" for label in constants.LABELS), "picture",
                                            ],
                                            "properties": {
                                                "id": {"type": "integer", "minimum": 0},
                                                "box": BOX,
                                                "score": {"type": "number", "minimum": 0, "maximum": 1},
                                                "label": {**LABEL, "description": "this frame's label"},
                                                **PROBABILITIES,
                                                "track_label": {**LABEL, "description": "the person's label from their frames so far"},
                                                **{f"track_{label}": _probability(f"{PROBABILITIES[label]['description']}, pooled over the frames so far")
                                                   for label in constants.LABELS},
                                                "person": {"type": "boolean", "description": "whether the track counts as a person"},
                                                "picture": {"type": "boolean", "description": "whether the track is so far a picture fixed to the scene "
                                                            "(a poster, a screen), not a person"},
                                            },
                                        },
                                    },
                                    "close_pairs": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["a", "b", "distance_m"],
                                            "properties": {
                                                "a": {"type": "integer", "description": "a track id"},
                                                "b": {"type": "integer", "description": "a track id"},
                                                "distance_m": {"type": "number", "minimum": 0},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "model"],
                    "properties": {"status": {"type": "string", "const": "ok"}, "model": {"type": "string"}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string", "description": "what was wrong and what to do"}},
                    "example": {"error": "refused URL: the URL's host is not a public address this service fetches from ..."},
                },
            },
        },
    }
