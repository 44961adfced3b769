# Shared by base-image.sh, build.sh and check.sh: pick the container engine and wrap it.
#
# With a Docker engine that answers, everything goes through `docker`. Without one (the CI
# machine), images are built with buildah and run with podman, as root, in a storage folder of
# their own outside the checkout, with the settings that work there: runtime runc (crun fails on
# that cgroup set-up), ulimits no higher than the hard limits we may not raise, `buildah bud
# --isolation chroot`, and the overlay storage driver when the kernel lets us mount overlayfs,
# else vfs (which works everywhere but copies the whole image for every build step and every
# container: minutes instead of seconds with TensorFlow's 2 GB).
# shellcheck shell=bash

DOCKER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$DOCKER_DIR/../.." && pwd)"

IMAGE="${MASKDETECT_IMAGE:-maskdetect:latest}"
# Everything podman/buildah keep (images, layers, run state): never inside the checkout.
CONTAINERS_HOME="${MASKDETECT_CONTAINERS_HOME:-/var/tmp/maskdetect-containers}"
# overlay or vfs; empty: overlay if this machine can mount it (see select_storage_driver).
STORAGE_DRIVER="${MASKDETECT_STORAGE_DRIVER:-}"
# Limits for containers and build steps; the defaults would ask for more than we may have.
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=16384:16384)

log() { printf '%s %s\n' "== $(basename "$0"):" "$*" >&2; }
die() { printf '%s %s\n' "ERROR $(basename "$0"):" "$*" >&2; exit 1; }

# The base image the Dockerfile starts from: the default of its `ARG PYTHON_IMAGE=`.
base_image_name() {
    local name
    name="$(sed -n 's/^ARG PYTHON_IMAGE=\([^[:space:]]*\).*/\1/p' "$PROJECT_ROOT/Dockerfile" | head -n 1)"
    [[ -n "$name" ]] || die "no 'ARG PYTHON_IMAGE=<image>' line in $PROJECT_ROOT/Dockerfile"
    printf '%s\n' "$name"
}

# "docker" when a Docker engine answers (or MASKDETECT_ENGINE=docker), else "podman".
select_engine() {
    if [[ -n "${MASKDETECT_ENGINE:-}" ]]; then
        ENGINE="$MASKDETECT_ENGINE"
    elif command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
    case "$ENGINE" in
        docker|podman) ;;
        *) die "MASKDETECT_ENGINE must be docker or podman, not '$ENGINE'" ;;
    esac
    if [[ "$ENGINE" == podman ]]; then
        ((EUID == 0)) || die "without a Docker engine this uses podman and buildah as root (as CI does): run it as root, or start a Docker engine"
        select_storage_driver
        log "container engine: podman + buildah (storage driver $STORAGE_DRIVER, runtime runc, $CONTAINERS_HOME)"
    else
        log "container engine: docker"
    fi
}

# overlay when a test mount works, else vfs. Each driver has its own storage folder.
select_storage_driver() {
    if [[ -z "$STORAGE_DRIVER" ]]; then
        STORAGE_DRIVER=vfs
        mkdir -p "$CONTAINERS_HOME"
        local probe
        probe="$(mktemp -d "$CONTAINERS_HOME/overlay-probe.XXXXXX")"
        mkdir "$probe"/{lower,upper,work,merged}
        if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
                "$probe/merged" 2>/dev/null; then
            umount "$probe/merged" && STORAGE_DRIVER=overlay
        fi
        rm -rf "$probe"
    fi
    case "$STORAGE_DRIVER" in
        overlay|vfs) ;;
        *) die "MASKDETECT_STORAGE_DRIVER must be overlay or vfs, not '$STORAGE_DRIVER'" ;;
    esac
}

# podman / buildah with our storage and runtime settings.
storage_flags() {
    printf '%s\n' --root "$CONTAINERS_HOME/storage-$STORAGE_DRIVER" \
        --runroot "$CONTAINERS_HOME/run-$STORAGE_DRIVER" --storage-driver "$STORAGE_DRIVER"
}
podman_() {
    local flags
    mapfile -t flags < <(storage_flags)
    podman "${flags[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
buildah_() {
    local flags
    mapfile -t flags < <(storage_flags)
    buildah "${flags[@]}" "$@"
}

# Debian packages the podman route needs; installed once, quietly, waiting for a busy dpkg.
PODMAN_PACKAGES=(podman buildah runc debootstrap conmon containernetworking-plugins iptables uidmap curl)
ensure_podman_tools() {
    local missing=() package
    for package in "${PODMAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$package")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null 2>&1 \
        || die "no Docker engine and no apt-get: install podman, buildah, runc and debootstrap yourself"
    ((EUID == 0)) \
        || die "no Docker engine; installing ${missing[*]} needs root: run as root (or: sudo apt-get install ${missing[*]})"
    log "installing ${missing[*]} (apt-get)"
    local apt=(apt-get -o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
    "${apt[@]}" update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

# Build, run, inspect and remove through the selected engine.
engine_image_exists() {
    if [[ "$ENGINE" == docker ]]; then docker image inspect "$1" >/dev/null 2>&1
    else podman_ image exists "$1"; fi
}
engine_build() {  # engine_build TAG [extra build args...]
    local tag="$1"; shift
    if [[ "$ENGINE" == docker ]]; then
        docker build --tag "$tag" "$@" "$PROJECT_ROOT"
    else
        buildah_ bud --isolation chroot --runtime runc "${ULIMITS[@]}" --pull-never \
            --layers --tag "$tag" "$@" "$PROJECT_ROOT"
    fi
}
engine() {  # any other subcommand: run, logs, rm, inspect, images ...
    if [[ "$ENGINE" == docker ]]; then docker "$@"; else podman_ "$@"; fi
}
