#!/usr/bin/env bash
# What a pod holds (documentation/deployment.md, "Sizing: requests and limits"): build the image,
# run it as Kubernetes runs it (the flags of `make docker-check`: read-only root, a 64 MB tmpfs at
# /tmp, no capabilities), and measure its processes' memory, phase by phase, with
# benchmarks/pod_memory.py (idle; 20 alternating /predict and /detect calls per worker; a street
# clip per worker at once; two 40 MP JPEGs at once). Removes the container in every case.
#
#   deployment/docker/memory.sh                                                        the default image: the .tflite
#   MASKDETECT_IMAGE=maskdetect:keras deployment/docker/memory.sh --build-arg KERAS=1  with TensorFlow, serving the .h5
#
# Needs the project's environment (.venv: psutil, Pillow; `make env`) and the crowd scenes of the
# shared data ($MASKDETECT_SHARED_DATA/scenes-dev/images). WORKERS (default 2) goes to the container.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/check.sh"

keras=0
for arg in "$@"; do [[ "$arg" == *KERAS=1 ]] && keras=1; done
PYTHON="${PYTHON:-$PROJECT_ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || die "no $PYTHON: run 'make env' (or set PYTHON to a Python with psutil and Pillow)"
build_image "$@"

port="$(free_port)"
run_flags=(--detach --name "$CONTAINER" --publish "127.0.0.1:$port:9696" "${RESTRICTED_RUN[@]}" --env "WORKERS=${WORKERS:-2}")
((keras == 0)) || run_flags+=(--env MODEL_PATH=/app/deployment/maskdetect.h5)
[[ "$ENGINE" != podman ]] || run_flags+=("${PODMAN_RESTRICTED_RUN[@]}" "${ULIMITS[@]}" --health-interval disable)
log "starting $CONTAINER on 127.0.0.1:$port"
started=1
engine run "${run_flags[@]}" "$IMAGE" >/dev/null 2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; die "could not start $IMAGE"; }
python3 "$DOCKER_DIR/smoke.py" "http://127.0.0.1:$port" /dev/null --health-only --wait "$WAIT" \
    || die "no 200 from /health within $WAIT s"
pid="$(engine inspect --format '{{.State.Pid}}' "$CONTAINER")"
log "serving $(engine exec "$CONTAINER" printenv MODEL_PATH) with WORKERS=${WORKERS:-2}; measuring (pid $pid on this host)"
"$PYTHON" "$PROJECT_ROOT/benchmarks/pod_memory.py" --pid "$pid" --url "http://127.0.0.1:$port" --workers "${WORKERS:-2}"
