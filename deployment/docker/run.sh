#!/usr/bin/env bash
# make docker-run: serve the image in the foreground at http://localhost:$PORT (default 9696).
#
#   deployment/docker/run.sh [extra run arguments, e.g. -e WORKERS=2]
#
# Ctrl-C stops and removes the container. Same engine choice as build.sh (docker, else podman
# with this project's storage); builds the image first (seconds when nothing changed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/build.sh"

PORT="${PORT:-9696}"
build_image
flags=(--rm --publish "127.0.0.1:$PORT:9696")
[[ -t 0 ]] && flags+=(--interactive --tty)
if [[ "$ENGINE" == podman ]]; then
    flags+=("${ULIMITS[@]}" --health-interval disable)  # no systemd timers here
fi
log "serving $IMAGE at http://localhost:$PORT (Ctrl-C stops it)"
exec 2> >(grep --line-buffered -v 'unable to get systemd connection' >&2)
engine run "${flags[@]}" "$@" "$IMAGE"
