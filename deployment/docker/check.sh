#!/usr/bin/env bash
# make docker-check: build the image, run it, check /health, /predict and /detect (also with 16 slow
# clients connected), remove the container.
#
#   deployment/docker/check.sh                                          the default image: the .tflite, no TensorFlow
#   MASKDETECT_IMAGE=maskdetect:keras deployment/docker/check.sh --build-arg KERAS=1   with TensorFlow, serving the .h5
#
# Docker when an engine answers, else podman and buildah (installed if missing, base image
# built locally if absent: see base-image.sh). Prints the build time, the time from `run` to the
# first 200 and the image size. Exits non-zero, with the container's log, on any failure; the
# container is removed in every case. Settings: MASKDETECT_IMAGE (default maskdetect:latest),
# MASKDETECT_ENGINE (docker or podman), MASKDETECT_CHECK_WAIT (seconds for /health, default 180).
#
# The container runs as Kubernetes runs it (deployment/kubernetes/deployment.yaml; the tests
# check that the two agree): a read-only root filesystem with a tmpfs at /tmp only, every
# capability dropped, no privilege escalation. The check proves the root is read-only and sends
# a large upload (over 500 KB) through it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"

# The Deployment's securityContext and its emptyDir at /tmp (sizeLimit 128Mi), as run flags.
RESTRICTED_RUN=(--read-only --tmpfs /tmp:rw,nosuid,nodev,size=128m --cap-drop ALL --security-opt no-new-privileges)
# podman would add tmpfs mounts of its own at /tmp, /var/tmp and /run under --read-only;
# Kubernetes does not, so neither does the check.
PODMAN_RESTRICTED_RUN=(--read-only-tmpfs=false)

WAIT="${MASKDETECT_CHECK_WAIT:-180}"
CONTAINER="maskdetect-check-$$"
WORK="$(mktemp -d)"
started=0

cleanup() {
    local status=$?
    if ((started)); then
        if ((status != 0)); then
            log "the container's log (last 60 lines):"
            engine logs "$CONTAINER" 2>&1 | tail -n 60 | sed 's/^/   | /' >&2 || true
        fi
        engine rm --force "$CONTAINER" >/dev/null 2>&1 || log "could not remove container $CONTAINER: remove it by hand"
    fi
    rm -rf "$WORK"
    ((status == 0)) || printf 'ERROR %s: failed (see above)\n' "$(basename "$0")" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The Dockerfile's HEALTHCHECK, run once inside the container.
run_healthcheck() {
    if [[ "$ENGINE" == podman ]]; then
        engine healthcheck run "$CONTAINER" >/dev/null
    else
        local command
        mapfile -d '' -t command < <(docker image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE" \
            | python3 -c 'import json, sys; t = json.load(sys.stdin); sys.stdout.write("\0".join(t[1:] if t[0] == "CMD" else ["sh", "-c", t[1]]))')
        docker exec "$CONTAINER" "${command[@]}" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

main() {
    command -v python3 >/dev/null 2>&1 || die "python3 is needed on this machine for the HTTP checks"
    # Built with --build-arg KERAS=1: the image holds TensorFlow and is checked serving the .h5.
    local keras=0 arg
    for arg in "$@"; do [[ "$arg" == *KERAS=1 ]] && keras=1; done
    build_image "$@"

    local port run_start first_200
    port="$(free_port)"
    run_start=$(date +%s.%N)
    log "starting $CONTAINER on 127.0.0.1:$port"
    started=1
    local run_flags=(--detach --name "$CONTAINER" --publish "127.0.0.1:$port:9696" "${RESTRICTED_RUN[@]}")
    ((keras == 0)) || run_flags+=(--env MODEL_PATH=/app/deployment/maskdetect.h5)
    # podman would run the HEALTHCHECK from systemd timers, which this machine may not have:
    # no timer, and the check runs it once below instead.
    if [[ "$ENGINE" == podman ]]; then
        run_flags+=("${PODMAN_RESTRICTED_RUN[@]}" "${ULIMITS[@]}" --health-interval disable)
    fi
    # (podman 4.3 still complains that it cannot reach systemd for the disabled timer: shown
    # only when the start fails.)
    if ! engine run "${run_flags[@]}" "$IMAGE" >/dev/null 2>"$WORK/run.err"; then
        cat "$WORK/run.err" >&2
        die "could not start $IMAGE"
    fi

    # A JPEG made by the image's own Pillow (nothing needed on the host).
    engine exec "$CONTAINER" python -c '
import io, sys
from PIL import Image, ImageDraw
image = Image.new("RGB", (320, 240), (200, 170, 140))
draw = ImageDraw.Draw(image)
draw.ellipse((100, 40, 220, 200), fill=(230, 190, 160))
draw.rectangle((110, 130, 210, 190), fill=(80, 140, 220))
buffer = io.BytesIO(); image.save(buffer, "JPEG", quality=90)
sys.stdout.buffer.write(buffer.getvalue())
' >"$WORK/smoke.jpg" || die "could not make a test JPEG inside the container"
    # And a large one, over 500 KB (nginx keeps it in memory; documentation/deployment.md, "Sizing: /tmp").
    engine exec "$CONTAINER" python -c '
import io, sys
from PIL import Image
image = Image.merge("RGB", [Image.effect_noise((900, 700), 60) for _ in range(3)])
buffer = io.BytesIO(); image.save(buffer, "JPEG", quality=95)
sys.stdout.buffer.write(buffer.getvalue())
' >"$WORK/large.jpg" || die "could not make a large test JPEG inside the container"
    local large_bytes
    large_bytes="$(wc -c <"$WORK/large.jpg")"
    ((large_bytes > 512000)) || die "the large test JPEG has $large_bytes bytes, not over 500 KB: not a large upload"

    local user
    user="$(engine exec "$CONTAINER" id -u)"
    [[ "$user" != 0 ]] || die "the service runs as root in the container; the Dockerfile must set USER"
    if engine exec "$CONTAINER" touch /app/.write-probe 2>/dev/null; then
        die "the container's root filesystem is writable: it should run with --read-only"
    fi
    # The default image serves the .tflite on LiteRT and holds no TensorFlow (1.5 GB); KERAS=1's does.
    local has_tensorflow
    has_tensorflow="$(engine exec "$CONTAINER" python -c 'import importlib.util; print(int(importlib.util.find_spec("tensorflow") is not None))')" \
        || die "could not run python in the container"
    [[ "$has_tensorflow" == "$keras" ]] \
        || die "TensorFlow is $( ((has_tensorflow)) || printf 'not ')installed in the image built with KERAS=$keras"
    local served
    served="$(engine exec "$CONTAINER" printenv MODEL_PATH)"
    log "serving $served ($( ((keras)) && printf 'TensorFlow installed' || printf 'no TensorFlow: LiteRT'))"

    # Wait for the first 200 from /health, giving up early when the container stops.
    local smoke=(python3 "$DOCKER_DIR/smoke.py" "http://127.0.0.1:$port" "$WORK/smoke.jpg")
    until "${smoke[@]}" --health-only --wait 2; do
        [[ "$(engine inspect --format '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" == true ]] \
            || die "the container stopped before /health answered"
        if awk -v a="$run_start" -v b="$(date +%s.%N)" -v w="$WAIT" 'BEGIN { exit !(b - a > w) }'; then
            die "no 200 from /health within $WAIT s (MASKDETECT_CHECK_WAIT sets the limit)"
        fi
    done
    first_200=$(awk -v a="$run_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    log "first 200 from /health ${first_200} s after 'run'"

    # ...and /health and /predict still answer within 2 s with 16 slow clients connected (nginx holds them).
    if ! "${smoke[@]}" --wait 10 --detect --slow-clients 16 | sed 's/^/   /' >&2; then
        die "the service in $IMAGE did not answer as it should"
    fi
    log "a $((large_bytes / 1024)) KB upload (spooled to /tmp):"
    if ! python3 "$DOCKER_DIR/smoke.py" "http://127.0.0.1:$port" "$WORK/large.jpg" --wait 10 | sed 's/^/   /' >&2; then
        die "the service in $IMAGE did not answer a large upload: is /tmp writable?"
    fi
    run_healthcheck || die "the image's HEALTHCHECK command fails although /health answers"
    log "HEALTHCHECK: healthy"

    log "OK: $IMAGE built in ${BUILD_SECONDS} s ($(image_size "$IMAGE")), serving $(basename "$served"), first 200 ${first_200} s after run, health, four predictions and a detection OK, 16 slow clients held by nginx, runs as uid $user with a read-only root and a tmpfs at /tmp"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # deployment/docker/memory.sh sources it for the run flags
    main "$@"
fi
