"""Settings.from_env(): the one place that reads the environment."""

from pathlib import Path

import pytest

from maskdetect.core.constants import CLIENT_TIMEOUT_S, DEFAULT_HOST, DEFAULT_PORT, PROJECT_ROOT, QUEUE_BUDGET_S
from maskdetect.core.weights import DETECTOR_FILE
from maskdetect.settings import Settings


def test_an_empty_environment_gives_the_checkout_defaults(tmp_path):
    settings = Settings.from_env({"MASKDETECT_SHARED_DATA": str(tmp_path)})
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.served_model == PROJECT_ROOT / "deployment" / "maskdetect.tflite"  # the lean runtime by default
    assert settings.trained_model == PROJECT_ROOT / "deployment" / "maskdetect.h5"
    assert settings.detector_weights == PROJECT_ROOT / "deployment" / "weights" / DETECTOR_FILE
    assert (settings.host, settings.port) == (DEFAULT_HOST, DEFAULT_PORT)
    assert (settings.client_timeout_s, settings.queue_budget_s) == (CLIENT_TIMEOUT_S, QUEUE_BUDGET_S)
    assert settings.face_centred and not settings.allow_private_urls and not settings.in_aws_lambda
    assert settings.realworld_dir is None  # no realworld-dev under this shared-data folder


def test_the_deployment_folder_moves_the_model_and_a_model_path_wins(tmp_path):
    moved = Settings.from_env({"MASKDETECT_DEPLOYMENT_DIR": str(tmp_path)})
    assert (moved.served_model, moved.trained_model) == (tmp_path / "maskdetect.tflite", tmp_path / "maskdetect.h5")
    chosen = Settings.from_env({"MASKDETECT_DEPLOYMENT_DIR": str(tmp_path), "MODEL_PATH": "/models/m.tflite"})
    assert chosen.served_model == Path("/models/m.tflite")
    assert chosen.trained_model == tmp_path / "maskdetect.h5"  # a .tflite is served, never trained or exported
    keras_file = Settings.from_env({"MODEL_PATH": "/models/m.h5"})
    assert keras_file.served_model == keras_file.trained_model == Path("/models/m.h5")  # the .h5 on request


def test_a_local_copy_of_the_weights_is_used_in_place(tmp_path):
    settings = Settings.from_env({"MASKDETECT_DETECTOR_SOURCE": str(tmp_path), "MASKDETECT_WEIGHTS_DIR": "/elsewhere"})
    assert settings.detector_weights == tmp_path / DETECTOR_FILE
    assert Settings.from_env({"MASKDETECT_WEIGHTS_DIR": str(tmp_path)}).detector_weights == tmp_path / DETECTOR_FILE


def test_realworld_dev_is_found_under_the_shared_data_or_named(tmp_path):
    (tmp_path / "realworld-dev").mkdir()
    assert Settings.from_env({"MASKDETECT_SHARED_DATA": str(tmp_path)}).realworld_dir == tmp_path / "realworld-dev"
    named = Settings.from_env({"MASKDETECT_REALWORLD_DIR": str(tmp_path / "mine")})
    assert named.realworld_dir == tmp_path / "mine"


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("off", False), ("", False)])
def test_yes_or_no_settings_read_the_usual_words(value, expected):
    assert Settings.from_env({"MASKDETECT_ALLOW_PRIVATE_URLS": value}).allow_private_urls is expected
    assert Settings.from_env({"MASKDETECT_FACE_CENTRED": value}).face_centred is (expected or value == "")


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("MASKDETECT_FACE_CENTRED", "maybe", "is not a yes or no"),
        ("PORT", "http", "is not a port number"),
        ("PORT", "70000", "is not a port number"),
        ("MASKDETECT_QUEUE_BUDGET_S", "soon", "is not a number of seconds over 0"),
        ("MASKDETECT_QUEUE_BUDGET_S", "0", "is not a number of seconds over 0"),
        ("MASKDETECT_QUEUE_BUDGET_S", "inf", "is not a number of seconds over 0"),
        ("MASKDETECT_CLIENT_TIMEOUT_S", "-1", "is not a number of seconds over 0"),
        ("MASKDETECT_CLIENT_TIMEOUT_S", "nan", "is not a number of seconds over 0"),
        ("MASKDETECT_URL_FETCHES", "0", "is not a whole number of at least 1"),
        ("MASKDETECT_URL_CLIENT_RATE", "2.5", "is not a whole number of at least 1"),
        ("MASKDETECT_URL_CLIENT_BURST", "-1", "is not a whole number of at least 0"),
        ("MASKDETECT_LARGE_REQUESTS", "0", "is not a whole number of at least 1"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_fix(name, value, message):
    with pytest.raises(ValueError, match=f"{name}=.*{message}.*unset it"):
        Settings.from_env({name: value})


def test_the_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1


def test_the_url_limits_are_read_and_a_burst_may_be_zero():
    settings = Settings.from_env({"MASKDETECT_URL_FETCHES": "3", "MASKDETECT_URL_CLIENT_CONNECTIONS": "2",
                                  "MASKDETECT_URL_CLIENT_RATE": "7", "MASKDETECT_URL_CLIENT_BURST": "0",
                                  "MASKDETECT_LARGE_REQUESTS": "2", "MASKDETECT_COMPUTE_SOCKET": "/run/x/gunicorn.sock"})
    assert (settings.url_fetches, settings.url_client_connections, settings.url_client_rate, settings.url_client_burst) == (3, 2, 7, 0)
    assert (settings.large_requests, Settings().large_requests) == (2, 6)
    assert settings.compute_socket == Path("/run/x/gunicorn.sock")
    assert (Settings().url_fetches, Settings().url_client_connections) == (8, 4) and Settings().compute_socket is None
