#!/usr/bin/env bash
# Build the service image (make docker): docker when an engine answers, else buildah.
#
#   deployment/docker/build.sh [extra build arguments...]
#
# Tag: $MASKDETECT_IMAGE (default maskdetect:latest). Without a Docker engine this installs
# podman and buildah if needed and builds the Dockerfile's base image first when it is absent
# (deployment/docker/base-image.sh); images live in /var/tmp/maskdetect-containers.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What the Dockerfile copies: say what to do before the build fails on a missing file.
check_build_inputs() {
    local missing=0 file
    if [[ ! -e "$PROJECT_ROOT/maskdetect/service.py" && ! -e "$PROJECT_ROOT/maskdetect/service/__init__.py" ]]; then
        printf 'ERROR %s: maskdetect/service (the Flask app) is missing\n' "$(basename "$0")" >&2
        missing=1
    fi
    for file in deployment/gunicorn.conf.py deployment/gunicorn-fetch.conf.py deployment/maskdetect.tflite deployment/maskdetect.h5 deployment/metrics.json \
                deployment/docker/requirements.txt deployment/docker/requirements-keras.txt; do
        if [[ ! -e "$PROJECT_ROOT/$file" ]]; then
            printf 'ERROR %s: %s is missing\n' "$(basename "$0")" "$file" >&2
            missing=1
        fi
    done
    # Third-party weights are never committed: `make weights` obtains them.
    if [[ ! -e "$PROJECT_ROOT/deployment/weights/face_detection_yunet_2023mar.onnx" ]]; then
        printf "ERROR %s: deployment/weights/face_detection_yunet_2023mar.onnx (the face detector's weights) is missing: run 'make weights'\n" "$(basename "$0")" >&2
        missing=1
    fi
    ((missing == 0)) || die "the image needs the service (maskdetect/service, deployment/gunicorn.conf.py), the model and its metrics (deployment/maskdetect.tflite, .h5 and metrics.json: 'make train' and 'make export', or the committed ones), deployment/docker/requirements*.txt ('make docker-requirements') and the face detector's weights ('make weights')"
}

build_image() {
    check_build_inputs
    select_engine
    if [[ "$ENGINE" == podman ]]; then
        ensure_podman_tools
        "$DOCKER_DIR/base-image.sh"
    fi
    local start=$SECONDS
    log "building $IMAGE from $PROJECT_ROOT/Dockerfile"
    if [[ "$ENGINE" == podman ]]; then
        # --format docker keeps the Dockerfile's HEALTHCHECK (OCI images have none).
        engine_build "$IMAGE" --format docker "$@" || die "building $IMAGE failed (output above)"
    else
        engine_build "$IMAGE" "$@" || die "building $IMAGE failed (output above)"
    fi
    BUILD_SECONDS=$((SECONDS - start))
    if [[ "$ENGINE" == podman ]]; then
        # Our own storage: drop what earlier builds left untagged (2 GB per TensorFlow layer).
        engine image prune --force >/dev/null || log "could not prune old images (harmless)"
    fi
    log "built $IMAGE in ${BUILD_SECONDS} s, $(image_size "$IMAGE")"
}

image_size() {
    local bytes
    bytes="$(engine image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo 0)"
    awk -v b="$bytes" 'BEGIN { printf "%.2f GB\n", b / 1e9 }'
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    build_image "$@"
fi
