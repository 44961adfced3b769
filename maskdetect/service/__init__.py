"""The prediction service: a Flask application factory, served by gunicorn.

``gunicorn -c deployment/gunicorn.conf.py`` calls :func:`create_app` once in every worker,
so each worker loads the model once (after the fork: TensorFlow is not fork-safe). Serving a
``.tflite`` model, the app imports neither TensorFlow nor Keras unless ``POST /detect`` is called.
The routes live in blueprints: :mod:`.api` (``/predict``, ``/detect``, ``/health``, ``/openapi.json``)
and :mod:`.page` (the web page at ``/``); :mod:`.errors` turns every failure into JSON.
"""

from __future__ import annotations

import sys

from flask import Flask

from .. import config
from ..fetch import Limits
from ..crowd import CrowdAnalyzer
from ..faces import MTCNNDetector
from ..inference import Predictor


def create_app(test_config: dict | None = None) -> Flask:
    """The WSGI application. ``test_config`` overrides settings (tests pass MODEL_PATH and limits).

    Settings: MODEL_PATH (default $MODEL_PATH, else deployment/maskdetect.h5),
    MAX_CONTENT_LENGTH (request body cap, bytes), ALLOW_PRIVATE_URLS (default
    $MASKDETECT_ALLOW_PRIVATE_URLS), URL_LIMITS (a maskdetect.fetch.Limits), FACE_CENTRED
    (default $MASKDETECT_FACE_CENTRED, on: /predict classifies the photo's largest face).
    """
    app = Flask(__name__, static_folder=None)  # the page blueprint serves its own static files
    app.config.from_mapping(
        MODEL_PATH=str(config.model_path()),
        MAX_CONTENT_LENGTH=config.MAX_IMAGE_BYTES,
        ALLOW_PRIVATE_URLS=config.allow_private_urls(),
        URL_LIMITS=Limits(),
        FACE_CENTRED=config.face_centred(),
    )
    app.json.sort_keys = False  # answers keep the documented order: label first
    if test_config is not None:
        app.config.update(test_config)

    # The face detector for POST /detect, with the tuned settings (config.DETECTOR); /predict's
    # subject detector shares its networks. MTCNN imports TensorFlow: with a Keras model TensorFlow
    # is in memory already, so MTCNN is built now, not on the first request; with a .tflite model
    # it is built by the first request that needs it (never, for the lean runtime: FACE_CENTRED off).
    detector = MTCNNDetector(**config.DETECTOR)
    # Loaded here, once per worker, so /health answers "ok" only with a model in memory.
    predictor = Predictor.load(app.config["MODEL_PATH"], face_centred=app.config["FACE_CENTRED"], sharing=detector)
    app.extensions["maskdetect.predictor"] = predictor
    if "tensorflow" in sys.modules:
        detector.load()
    app.extensions["maskdetect.analyzer"] = CrowdAnalyzer(detector, predictor)

    from . import api, errors, page

    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(page.bp)

    @app.after_request
    def no_sniffing(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
