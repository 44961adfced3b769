"""The one place that reads the environment: ``Settings.from_env()``.

The service, the Lambda and the CLI build one ``Settings`` and pass it (or the values they need) on;
``maskdetect.core`` never reads the environment. Paths default to the checkout, so tests and CI move
them with variables and never touch the working tree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .core.constants import (
    CLIENT_TIMEOUT_S, DEFAULT_HOST, DEFAULT_PORT, MODEL_FILE, PROJECT_ROOT, QUEUE_BUDGET_S, SERVED_FILE,
    LARGE_REQUESTS, URL_CLIENT_BURST, URL_CLIENT_CONNECTIONS, URL_CLIENT_RATE, URL_FETCHES,
)
from .core.weights import DETECTOR_FILE

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = PROJECT_ROOT / "data"  # MASKDETECT_DATA_DIR: the laid-out split, downloads
    deployment_dir: Path = PROJECT_ROOT / "deployment"  # MASKDETECT_DEPLOYMENT_DIR: trained models, metrics
    model_path: Path | None = None  # MODEL_PATH: the model served (see served_model)
    shared_data: Path = PROJECT_ROOT.parent / "shared" / "data"  # MASKDETECT_SHARED_DATA: evaluation sets
    realworld_dir: Path | None = None  # MASKDETECT_REALWORLD_DIR, else shared_data/realworld-dev if there
    data_source: Path | None = None  # MASKDETECT_DATA_SOURCE: a local copy of the observations photos
    data_url: str | None = None  # MASKDETECT_DATA_URL: another archive URL (tests)
    realfaces_source: Path | None = None  # MASKDETECT_REALFACES_SOURCE: a local copy of realfaces-train
    realfaces_url: str | None = None  # MASKDETECT_REALFACES_URL
    maskwear_source: Path | None = None  # MASKDETECT_MASKWEAR_SOURCE: a local copy of maskwear-train
    maskwear_url: str | None = None  # MASKDETECT_MASKWEAR_URL: replaces https://raw.githubusercontent.com
    weights_dir: Path = PROJECT_ROOT / "deployment" / "weights"  # MASKDETECT_WEIGHTS_DIR: obtained weights
    detector_source: Path | None = None  # MASKDETECT_DETECTOR_SOURCE: a local copy of the detector's weights
    detector_url: str | None = None  # MASKDETECT_DETECTOR_URL
    allow_private_urls: bool = False  # MASKDETECT_ALLOW_PRIVATE_URLS: let URL inputs reach private addresses
    face_centred: bool = True  # MASKDETECT_FACE_CENTRED=0: classify whole photos, not the largest face
    host: str = DEFAULT_HOST  # HOST
    port: int = DEFAULT_PORT  # PORT
    client_timeout_s: float = CLIENT_TIMEOUT_S  # MASKDETECT_CLIENT_TIMEOUT_S: nginx's per-read client deadline
    queue_budget_s: float = QUEUE_BUDGET_S  # MASKDETECT_QUEUE_BUDGET_S: longest wait for a worker before a 503
    url_fetches: int = URL_FETCHES  # MASKDETECT_URL_FETCHES: URLs the fetch stage fetches at once
    url_client_connections: int = URL_CLIENT_CONNECTIONS  # MASKDETECT_URL_CLIENT_CONNECTIONS: open JSON requests per client
    url_client_rate: int = URL_CLIENT_RATE  # MASKDETECT_URL_CLIENT_RATE: JSON requests a second per client
    url_client_burst: int = URL_CLIENT_BURST  # MASKDETECT_URL_CLIENT_BURST: JSON requests over the rate let through at once
    large_requests: int = LARGE_REQUESTS  # MASKDETECT_LARGE_REQUESTS: large requests (bodies of 1 MB+, annotated answers, clips) at once in the pod
    compute_socket: Path | None = None  # MASKDETECT_COMPUTE_SOCKET, set by maskdetect serve: where the fetch stage forwards
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR, set by maskdetect serve: the workers' metrics files
    lambda_task_root: Path | None = None  # LAMBDA_TASK_ROOT, set by the AWS Lambda runtime: the handler's folder
    in_aws_lambda: bool = False  # AWS_LAMBDA_FUNCTION_NAME is set: running inside AWS Lambda

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            return env.get(name, "").strip() or None

        def path(name: str) -> Path | None:
            return Path(value(name)) if value(name) else None

        defaults = cls()
        deployment_dir = path("MASKDETECT_DEPLOYMENT_DIR") or defaults.deployment_dir
        shared_data = path("MASKDETECT_SHARED_DATA") or defaults.shared_data
        realworld = path("MASKDETECT_REALWORLD_DIR") or shared_data / "realworld-dev"
        return cls(
            data_dir=path("MASKDETECT_DATA_DIR") or defaults.data_dir,
            deployment_dir=deployment_dir,
            model_path=path("MODEL_PATH"),
            shared_data=shared_data,
            realworld_dir=realworld if (value("MASKDETECT_REALWORLD_DIR") or realworld.is_dir()) else None,
            data_source=path("MASKDETECT_DATA_SOURCE"),
            data_url=value("MASKDETECT_DATA_URL"),
            realfaces_source=path("MASKDETECT_REALFACES_SOURCE"),
            realfaces_url=value("MASKDETECT_REALFACES_URL"),
            maskwear_source=path("MASKDETECT_MASKWEAR_SOURCE"),
            maskwear_url=value("MASKDETECT_MASKWEAR_URL"),
            weights_dir=path("MASKDETECT_WEIGHTS_DIR") or defaults.weights_dir,
            detector_source=path("MASKDETECT_DETECTOR_SOURCE"),
            detector_url=value("MASKDETECT_DETECTOR_URL"),
            allow_private_urls=_flag(env, "MASKDETECT_ALLOW_PRIVATE_URLS", False),
            face_centred=_flag(env, "MASKDETECT_FACE_CENTRED", True),
            host=value("HOST") or DEFAULT_HOST,
            port=_port(value("PORT")),
            client_timeout_s=_seconds(env, "MASKDETECT_CLIENT_TIMEOUT_S", CLIENT_TIMEOUT_S),
            queue_budget_s=_seconds(env, "MASKDETECT_QUEUE_BUDGET_S", QUEUE_BUDGET_S),
            url_fetches=_count(env, "MASKDETECT_URL_FETCHES", URL_FETCHES),
            url_client_connections=_count(env, "MASKDETECT_URL_CLIENT_CONNECTIONS", URL_CLIENT_CONNECTIONS),
            url_client_rate=_count(env, "MASKDETECT_URL_CLIENT_RATE", URL_CLIENT_RATE),
            url_client_burst=_count(env, "MASKDETECT_URL_CLIENT_BURST", URL_CLIENT_BURST, least=0),
            large_requests=_count(env, "MASKDETECT_LARGE_REQUESTS", LARGE_REQUESTS),
            compute_socket=path("MASKDETECT_COMPUTE_SOCKET"),
            metrics_dir=path("PROMETHEUS_MULTIPROC_DIR"),  # prometheus-client's own name, which it reads at import
            lambda_task_root=path("LAMBDA_TASK_ROOT"),
            in_aws_lambda=bool(value("AWS_LAMBDA_FUNCTION_NAME")),
        )

    @property
    def served_model(self) -> Path:
        """The model the service and `maskdetect predict` load: MODEL_PATH, else the deployment folder's .tflite."""
        return self.model_path or self.deployment_dir / SERVED_FILE

    @property
    def trained_model(self) -> Path:
        """The Keras model `maskdetect train` writes and `maskdetect export` converts: MODEL_PATH if it is one, else the deployment folder's .h5."""
        if self.model_path is not None and self.model_path.suffix.lower() in (".h5", ".keras"):
            return self.model_path
        return self.deployment_dir / MODEL_FILE

    @property
    def detector_weights(self) -> Path:
        """The face detector's weights file: the local copy's when there is one, else the obtained one."""
        return (self.detector_source or self.weights_dir) / DETECTOR_FILE


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in TRUE + FALSE:
        raise ValueError(f"{name}={value!r} is not a yes or no; use 1 or 0, or unset it for the default")
    return value in TRUE


def _port(value: str | None) -> int:
    if value is None:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"PORT={value!r} is not a port number (1-65535); unset it for {DEFAULT_PORT}")
    return int(value)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{name}={value!r} is not a number of seconds over 0; unset it for the default {default:g}")
    return seconds


def _count(env: Mapping[str, str], name: str, default: int, least: int = 1) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < least:
        raise ValueError(f"{name}={value!r} is not a whole number of at least {least}; unset it for the default {default}")
    return int(value)
