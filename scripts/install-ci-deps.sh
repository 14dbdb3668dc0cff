#!/usr/bin/env bash
# Install what CI and the integration tests need, only when it is missing.
# Debian packages are checked by the command they provide; `apt-get update` runs at most once.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# command -> Debian package
declare -A packages=(
    [docker]=docker.io
    [dockerd]=docker.io
    [docker-compose]=docker-compose
    [caddy]=caddy
    [nginx]=nginx
    [promtool]=prometheus
    [systemd-analyze]=systemd
    [sshd]=openssh-server
    [ssh]=openssh-client
    [busybox]=busybox-static
    [hyperfine]=hyperfine
    [ip]=iproute2
    [debootstrap]=debootstrap
    [readelf]=binutils
    [pebble]=pebble
    [pebble-challtestsrv]=pebble
    [certbot]=certbot
    [openssl]=openssl
    [curl]=curl
)

missing=()
for command in "${!packages[@]}"; do
    if ! command -v "$command" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$command" ]; then
        missing+=("${packages[$command]}")
    fi
done
# A dynamically linked busybox cannot be copied into a scratch image.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
    missing+=(busybox-static)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "install-ci-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The nginx package starts a server on port 80; tests need the port free.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
if pgrep -x nginx >/dev/null 2>&1; then
    for pid in $(pgrep -x nginx); do kill "$pid" 2>/dev/null || true; done
fi
# Same for a caddy the package may have started.
if command -v service >/dev/null 2>&1; then service caddy stop >/dev/null 2>&1 || true; fi

if ! python3 -c 'import jsonschema, yaml' >/dev/null 2>&1; then
    echo "install-ci-deps: installing jsonschema pyyaml" >&2
    python3 -m pip install --quiet jsonschema pyyaml ||
        python3 -m pip install --quiet --break-system-packages jsonschema pyyaml
fi

# The off-site backup tests (tests/backup.rs) speak S3 to moto's server, on the test
# project network's gateway address (a host address only this machine and its containers reach):
# moto from PyPI, in its own venv.
MOTO_VENV=/opt/stack-ci/moto
if ! [ -x "$MOTO_VENV/bin/moto_server" ]; then
    echo "install-ci-deps: installing moto[server] into $MOTO_VENV" >&2
    if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        rm -rf "$MOTO_VENV"
        python3 -m venv "$MOTO_VENV"
    fi
    "$MOTO_VENV/bin/pip" install --quiet 'moto[server]'
fi
