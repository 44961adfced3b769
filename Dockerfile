# The prediction service: nginx in front of gunicorn serving maskdetect.service on port 9696,
# with deployment/maskdetect.tflite on LiteRT: no TensorFlow in the image.
#
#   docker build -t maskdetect .
#   docker run --rm -p 9696:9696 maskdetect
#   curl http://localhost:9696/health
#
# To serve the Keras .h5 instead, build with TensorFlow and Keras (1.5 GB more) and choose it:
#
#   docker build --build-arg KERAS=1 -t maskdetect:keras .
#   docker run --rm -p 9696:9696 -e MODEL_PATH=/app/deployment/maskdetect.h5 maskdetect:keras
#
# `make docker` / `make docker-check` do the same, with podman and buildah where no Docker
# engine runs (see documentation/deployment.md, "Docker").

# Debian bookworm's Python 3.11, like the project's environment. Without a registry,
# deployment/docker/base-image.sh builds an equivalent image locally under this name.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}
# 1: also install TensorFlow and Keras (deployment/docker/requirements-keras.txt), so that
# MODEL_PATH may name a Keras model (.h5, .keras).
ARG KERAS=0

# Settings first and the big layer (the packages) late: steps after it are cheap with overlay
# storage but copy the whole tree with podman's vfs storage.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    HOST=0.0.0.0 \
    PORT=9696 \
    MODEL_PATH=/app/deployment/maskdetect.tflite
WORKDIR /app
EXPOSE 9696
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '9696'), timeout=4)"]
# nginx in front of gunicorn: a slow client costs an nginx connection, not a worker
# (maskdetect/serve.py; documentation/service.md, "Slow clients, bursts and restarts").
CMD ["python", "-m", "maskdetect.serve"]

# The service runs as this user, without write access to its code or model.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin maskdetect

# Debian's nginx, run by maskdetect.serve as the service's user (its files under /tmp).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*

# Only the packages serving needs, at Pipfile.lock's versions and hashes: the requirements files
# are generated from the lock by `make docker-requirements` (why: deployment/docker/requirements.in).
# Installed before the code is copied, so code changes do not re-install them.
COPY deployment/docker/requirements.txt deployment/docker/requirements-keras.txt /tmp/
RUN requirements=/tmp/requirements.txt \
    && if [ "$KERAS" = 1 ]; then requirements=/tmp/requirements-keras.txt; fi \
    && python -m pip install --no-deps --require-hashes --root-user-action=ignore --progress-bar off \
        -r "$requirements" \
    && python -m pip check \
    && rm /tmp/requirements.txt /tmp/requirements-keras.txt

COPY maskdetect/ maskdetect/
# The served .tflite names the .h5 it was exported from in metrics.json; the .h5 (2.6 MB) is there
# for an image built with KERAS=1.
COPY deployment/gunicorn.conf.py deployment/gunicorn-fetch.conf.py deployment/nginx.conf deployment/maskdetect.tflite deployment/maskdetect.h5 deployment/metrics.json deployment/
# The face detector's weights, obtained by `make weights` (not committed); found where weights_dir() looks.
COPY deployment/weights/face_detection_yunet_2023mar.onnx deployment/weights/
USER maskdetect
