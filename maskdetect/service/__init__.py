"""The prediction service: a Flask application factory, served by gunicorn.

``gunicorn -c deployment/gunicorn.conf.py`` calls :func:`create_app` once in every worker,
so each worker loads the model and the face detector once (after the fork: TensorFlow is not
fork-safe). Serving a ``.tflite`` model, the app never imports TensorFlow or Keras.
The routes live in blueprints: :mod:`.api` (``/predict``, ``/detect``, ``/health``, ``/openapi.json``)
and :mod:`.page` (the web page at ``/``); :mod:`.errors` turns every failure into JSON.
"""

from __future__ import annotations

from flask import Flask

from .. import config
from ..fetch import Limits
from ..crowd import CrowdAnalyzer
from ..faces import YuNetDetector
from ..inference import ModelError, Predictor
from ..weights import WeightsError


def create_app(test_config: dict | None = None) -> Flask:
    """The WSGI application. ``test_config`` overrides settings (tests pass MODEL_PATH and limits).

    Settings: MODEL_PATH (default $MODEL_PATH, else deployment/maskdetect.h5),
    MAX_CONTENT_LENGTH (request body cap, bytes), ALLOW_PRIVATE_URLS (default
    $MASKDETECT_ALLOW_PRIVATE_URLS), URL_LIMITS (a maskdetect.fetch.Limits), FACE_CENTRED
    (default $MASKDETECT_FACE_CENTRED, on: /predict classifies the photo's largest face),
    QUEUE_BUDGET_S (default $MASKDETECT_QUEUE_BUDGET_S, 1 s: a POST that waited longer for a
    worker is answered 503; None never sheds; see :mod:`.shedding`).
    """
    app = Flask(__name__, static_folder=None)  # the page blueprint serves its own static files
    app.config.from_mapping(
        MODEL_PATH=str(config.model_path()),
        MAX_CONTENT_LENGTH=config.MAX_IMAGE_BYTES,
        ALLOW_PRIVATE_URLS=config.allow_private_urls(),
        URL_LIMITS=Limits(),
        FACE_CENTRED=config.face_centred(),
        QUEUE_BUDGET_S=config.queue_budget_s(),
    )
    app.json.sort_keys = False  # answers keep the documented order: label first
    if test_config is not None:
        app.config.update(test_config)

    # Loaded here, once per worker, so /health answers "ok" only with the model and detector in memory.
    detector = YuNetDetector(**config.DETECTOR)  # POST /detect's; /predict's shares its network
    predictor = Predictor.load(app.config["MODEL_PATH"], face_centred=app.config["FACE_CENTRED"], sharing=detector)
    try:
        detector.load()
    except WeightsError as error:
        raise ModelError(str(error)) from error
    app.extensions["maskdetect.predictor"] = predictor
    app.extensions["maskdetect.analyzer"] = CrowdAnalyzer(detector, predictor)

    from . import api, errors, page, shedding

    errors.register(app)
    shedding.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(page.bp)

    @app.after_request
    def no_sniffing(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
