"""The prediction service: a Flask application factory, served by gunicorn.

``gunicorn -c deployment/gunicorn.conf.py`` calls :func:`create_app` once in every worker,
so each worker loads the model and the face detector once (after the fork: TensorFlow is not
fork-safe). Serving a ``.tflite`` model, the app never imports TensorFlow or Keras.
The routes live in blueprints: :mod:`.api` (``/predict``, ``/detect``, ``/health``, ``/openapi.json``)
and :mod:`.page` (the web page at ``/``); :mod:`.errors` turns every failure into JSON;
:mod:`.metrics` counts requests and answers ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

from flask import Flask

from . import api, errors, metrics, page, shedding

from ..core.constants import DETECTOR, MAX_IMAGE_BYTES
from ..core.crowd import CrowdAnalyzer
from ..core.faces import YuNetDetector
from ..core.fetch import Limits
from ..core.inference import ModelError, Predictor
from ..core.weights import WeightsError
from ..settings import Settings


def create_app(test_config: dict | None = None, settings: Settings | None = None) -> Flask:
    """The WSGI application, configured from ``settings`` (default ``Settings.from_env()``).

    ``test_config`` overrides the app's config keys (tests pass MODEL_PATH and limits): MODEL_PATH,
    MAX_CONTENT_LENGTH (request body cap, bytes), ALLOW_PRIVATE_URLS, URL_LIMITS (a
    maskdetect.core.fetch.Limits), FACE_CENTRED (/predict classifies the photo's largest face),
    DETECTOR_WEIGHTS, QUEUE_BUDGET_S (a POST that waited longer for a worker is answered 503;
    None never sheds; see :mod:`.shedding`), METRICS_DIR (prometheus-client's multiprocess folder, or None: this
    process's metrics; see :mod:`.metrics`).
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # the page blueprint serves its own static files
    app.config.from_mapping(
        MODEL_PATH=str(settings.served_model),  # MODEL_PATH, else the committed .tflite (bare `maskdetect serve`)
        MAX_CONTENT_LENGTH=MAX_IMAGE_BYTES,
        ALLOW_PRIVATE_URLS=settings.allow_private_urls,
        URL_LIMITS=Limits(),
        FACE_CENTRED=settings.face_centred,
        DETECTOR_WEIGHTS=settings.detector_weights,
        QUEUE_BUDGET_S=settings.queue_budget_s,
        METRICS_DIR=settings.metrics_dir,
    )
    app.json.sort_keys = False  # answers keep the documented order: label first
    if test_config is not None:
        app.config.update(test_config)

    # Loaded here, once per worker, so /health answers "ok" only with the model and detector in memory.
    detector = YuNetDetector(app.config["DETECTOR_WEIGHTS"], **DETECTOR)  # POST /detect's; /predict's shares its network
    predictor = Predictor.load(app.config["MODEL_PATH"], face_centred=app.config["FACE_CENTRED"], sharing=detector)
    try:
        detector.load()
    except WeightsError as error:
        raise ModelError(str(error)) from error
    app.extensions["maskdetect.predictor"] = predictor
    app.extensions["maskdetect.analyzer"] = CrowdAnalyzer(detector, predictor)

    errors.register(app)
    metrics.register(app)  # first: it counts the requests shedding refuses
    shedding.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(page.bp)

    @app.after_request
    def no_sniffing(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
