"""Fixed choices of the model and the service; what the environment may change is in maskdetect.settings."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CLASSES = ("with_mask", "without_mask")  # the class folders of the two-class sources (observations, realfaces-train)
LABELS = ("with_mask", "incorrect", "without_mask")  # what the model answers, in its output order
MASKED = "with_mask"  # a face labelled anything else (a mask below the nose, or none) counts as not masked

MODEL_FILE = "maskdetect.h5"  # the trained Keras model
SERVED_FILE = "maskdetect.tflite"  # what the service, the image and the Lambda serve: exported from MODEL_FILE and checked against it
METRICS_FILE = "metrics.json"

DEFAULT_PORT = 9696
DEFAULT_HOST = "127.0.0.1"  # `make serve` stays on this machine; the container sets HOST=0.0.0.0

# What a caller can make the service read: bodies are refused while they stream in, images
# before their pixels are decoded (decompression bombs).
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000  # 2.5x the largest training photo, 120 MB once decoded
URL_CONNECT_TIMEOUT = 3.0  # seconds to open the connection
URL_TOTAL_TIMEOUT = 10.0  # seconds for the whole fetch: DNS, redirects and body
URL_MAX_REDIRECTS = 3
# A clip sent to POST /detect: the worst one these accept is answered well inside gunicorn's 30 s
# (benchmarks/clip_limits.py; documentation/service.md#clips-what-a-request-may-cost).
MAX_VIDEO_SECONDS = 20.0  # the longest clip
VIDEO_PROCESS_FPS = 10.0  # about the frames a second the service tracks in a clip (every 2nd of 25 fps, every 3rd of 30)
MAX_VIDEO_PROCESSED_FRAMES = 100  # 90-150 ms of CPU each (YuNet, twice): a clip with more (over 10 s at 10/s) gets a larger stride
MAX_VIDEO_FRAME_PIXELS = 1280 * 720  # HD: YuNet looks at a frame shrunk to 640 and 800 px, so larger ones find no more faces
MAX_VIDEO_DECODED_PIXELS = 20 * 30 * 1280 * 720  # 20 s of HD at 30 fps: FFmpeg decodes every frame, the skipped ones too
MAX_VIDEO_ANNOTATED_PIXELS = 10 * 25 * 640 * 360  # ?format=mp4|webm draws and encodes every frame; VP8 does ~20 megapixels/s
MAX_VIDEO_FACES = 1000  # found in the frames tracked, ~4 ms of CPU each: 10 a frame (a crowd of 70 costs 4x a street of 3)

# POST /detect?format=png|jpeg|webp answers the photo boxed, shrunk so the answer stays small
# (documentation/service.md#annotated-photos-the-cap). PNG is lossless: noise costs its raw 3 bytes a
# pixel (1920x1920: 11.07 MB), so PNG has a pixel cap too, 9.6 MB raw, which keeps it under 10 MB.
ANNOTATED_MAX_SIDE = 1920
ANNOTATED_PNG_MAX_PIXELS = 3_200_000  # a 1920x1080 frame stays whole; a 1920x1920 square becomes 1788x1788
ANNOTATED_FORMATS = {  # ?format=: (Pillow format, media type, encoder options)
    "png": ("PNG", "image/png", {}),
    "jpeg": ("JPEG", "image/jpeg", {"quality": 85}),
    "webp": ("WEBP", "image/webp", {"quality": 80}),
}

# nginx in front of gunicorn (`maskdetect serve`): client deadlines and the load-shedding budget.
CLIENT_TIMEOUT_S = 10.0
QUEUE_BUDGET_S = 1.0
RETRY_AFTER_S = 1  # what a shed request is told to wait

# The URL fetch stage (`maskdetect serve`): JSON bodies to /predict and /detect are fetched there, off
# the compute workers; per client (nginx's limit_conn and limit_req on the JSON route) and per stage.
URL_FETCHES = 8  # URLs fetched at once by the stage; past it a 503 with Retry-After at once
URL_CLIENT_CONNECTIONS = 4  # JSON requests one client address may have open at once: half the fetches
URL_CLIENT_RATE = 5  # JSON requests a second per client address, sustained...
URL_CLIENT_BURST = 10  # ...after a burst of this many more (nginx's limit_req burst, nodelay)
# Large requests (a body of 10^6 bytes or more, or chunked; ?format=; a clip) nginx holds at once in the
# pod: each may hold a 10 MB body and a 16 MB answer in nginx's memory (documentation/deployment.md).
LARGE_REQUESTS = 6

# LiteRT interpreter threads: each of the 2 sync workers has a core of its own.
TFLITE_THREADS = 1

# The crowd face detector (keyword arguments of maskdetect.core.faces.YuNetDetector): a 2x pass
# finds the small faces of a street scene (documentation/crowd.md).
DETECTOR = {
    "scales": (1.0, 2.0),
    "score_threshold": 0.55,
    "nms_threshold": 0.3,
    "max_side": 640,
    "max_pass_side": 800,
}
FACE_CROP_MARGIN = 0.0  # the classifier sees the square around the detector's box, as in realfaces-train
SHARE_MIN_SCORE = 0.75  # the unmasked share counts the faces the detector is this sure of

# /predict classifies the photo's largest face, found in one small pass on a reduced decode.
SUBJECT_DETECTOR = {**DETECTOR, "scales": (1.0,), "max_side": 320, "score_threshold": 0.6}
SUBJECT_DECODE_SIDE = 320
# When that pass finds no face (a small face in a large photo), /predict looks again at 1x and 2x, as
# the crowd detector does, before it falls back to the whole photo; a photo with a face found pays nothing.
SECOND_LOOK = {**SUBJECT_DETECTOR, "scales": (1.0, 2.0)}

# The pinhole model behind close_pairs (maskdetect.core.crowd): assumptions, not measurements.
FACE_WIDTH_M = 0.15  # a typical adult face is about 15 cm wide
CAMERA_FOV_DEG = 60.0  # assumed horizontal field of view of the camera
CLOSE_DISTANCE_M = 1.5  # unmasked people estimated closer than this are listed in close_pairs
