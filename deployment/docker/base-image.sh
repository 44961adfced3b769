#!/usr/bin/env bash
# Build the Dockerfile's base image locally, for machines that reach no container registry.
#
#   deployment/docker/base-image.sh          build it if it is not there yet
#   deployment/docker/base-image.sh --force  rebuild it
#
# The Dockerfile starts `FROM python:3.11-slim-bookworm` (its `ARG PYTHON_IMAGE`). Without a
# registry, this script makes an equivalent image: Debian bookworm (`debootstrap
# --variant=minbase`) from the Debian mirror apt already uses, with Debian's Python 3.11, pip and
# venv, pip allowed to install system-wide (no EXTERNALLY-MANAGED marker), and this machine's
# extra CA certificates (pip may reach PyPI through an HTTPS proxy that needs one). It is stored
# under the same name, so the Dockerfile builds unchanged here and against a real registry.
# About 90 s. With a Docker engine there is nothing to do: docker pulls the real image.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
case "${1:-}" in
    --force) force=1 ;;
    --print-mirror) ;;  # print the mirror apt uses for bookworm, and stop (for tests)
    "") ;;
    *) die "usage: $0 [--force]" ;;
esac

SUITE=bookworm
APT_ETC="${MASKDETECT_APT_ETC:-/etc/apt}"  # where apt's sources are read (tests point it elsewhere)
BASE_PACKAGES=python3,python3-pip,python3-venv,python-is-python3,ca-certificates,passwd

# The first URI apt uses for $1 (e.g. "bookworm", "bookworm-security"), from the one-line
# (sources.list, *.list) or deb822 (*.sources) files, skipping disabled entries.
apt_uri_for_suite() {
    local suite="$1" file
    for file in "$APT_ETC"/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        # deb822: paragraphs separated by blank lines; take URIs of an enabled "deb" stanza.
        awk -v suite="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, " "); print u[1]; found = 1; exit
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
              if (key == "types") types = $0; else if (key == "suites") suites = $0
              else if (key == "uris") uris = $0; else if (key == "enabled") enabled = tolower($0) }
            END { if (!found) flush() }
        ' "$file"
    done
    for file in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        # one-line: deb [options] URI SUITE COMPONENTS...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$file" \
            | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
    done
}

first_line() { head -n 1; }

main() {
    select_engine
    local name
    name="$(base_image_name)"
    if [[ "$ENGINE" == docker ]]; then
        log "Docker engine: '$name' comes from the registry (docker pulls it); nothing to build"
        return 0
    fi
    ensure_podman_tools
    if ((force == 0)) && engine_image_exists "$name"; then
        log "base image '$name' is there (--force rebuilds it)"
        return 0
    fi
    ((EUID == 0)) || die "debootstrap needs root: run this as root"

    local mirror security
    mirror="${MASKDETECT_DEBIAN_MIRROR:-$(apt_uri_for_suite "$SUITE" | first_line)}"
    [[ -n "$mirror" ]] || die "found no Debian '$SUITE' mirror in apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/); set MASKDETECT_DEBIAN_MIRROR=http://your-mirror/debian"
    security="${MASKDETECT_DEBIAN_SECURITY_MIRROR:-$(apt_uri_for_suite "$SUITE-security" | first_line)}"
    log "Debian mirror: $mirror${security:+, security: $security}"

    mkdir -p "$CONTAINERS_HOME"
    ROOTFS="$(mktemp -d "$CONTAINERS_HOME/rootfs.XXXXXX")"
    chmod 0755 "$ROOTFS"  # it becomes the image's "/": mktemp's 0700 would lock out non-root users
    trap 'rm -rf --one-file-system "$ROOTFS"' EXIT

    local start=$SECONDS
    log "debootstrap --variant=minbase $SUITE into $ROOTFS (about a minute)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$ROOTFS" "$mirror" \
        >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; die "debootstrap failed (full log: $ROOTFS.log)"; }
    rm -f "$ROOTFS.log"

    # apt inside the image: the same mirror, with the point-release and security updates.
    {
        printf 'deb %s %s main\n' "$mirror" "$SUITE"
        printf 'deb %s %s-updates main\n' "$mirror" "$SUITE"
        [[ -z "$security" ]] || printf 'deb %s %s-security main\n' "$security" "$SUITE"
    } >"$ROOTFS/etc/apt/sources.list"

    # This machine's extra CA certificates (e.g. an HTTPS proxy's), trusted by pip in the image.
    local cert added=0
    for cert in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
        [[ -f "$cert" ]] || continue
        install -D -m 0644 "$cert" "$ROOTFS${cert}"
        added=$((added + 1))
    done
    log "extra CA certificates: $added"

    log "updating packages and trimming the image"
    if ! chroot "$ROOTFS" /bin/sh -eu -c '
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
        apt-get update -qq
        apt-get upgrade -y -qq >/dev/null
        update-ca-certificates >/dev/null
        apt-get clean
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
               /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
        rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
        python3 --version; python3 -m pip --version
    ' 2>&1 | grep -v -e 'unsandboxed as root' -e '/dev/pts mounted' -e 'delaying package configuration' \
           | sed 's/^/   /' >&2; then
        die "setting up the base image in $ROOTFS failed"
    fi

    # Replace an older copy (--force), then import under the Dockerfile's name.
    engine_image_exists "$name" && podman_ rmi --force "$name" >/dev/null
    tar --numeric-owner -C "$ROOTFS" -c . | podman_ import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$name" >/dev/null || die "podman import of $ROOTFS failed"
    log "base image '$name' built in $((SECONDS - start)) s"
}

if [[ "${1:-}" == --print-mirror ]]; then
    printf '%s\n' "$(apt_uri_for_suite "$SUITE" | first_line)" "$(apt_uri_for_suite "$SUITE-security" | first_line)"
    exit 0
fi
main "$@"
