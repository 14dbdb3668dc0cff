#!/usr/bin/env bash
# Install stack on a CI runner (the action's first step).
#
#   STACK_DEB=PATH|URL      a .deb (scripts/build-deb.sh): `apt-get install ./stack_*.deb`
#   STACK_BINARY=PATH|URL   a static binary (scripts/build-static.sh): into ~/.local/bin
#   neither                 keep the `stack` already on PATH (the stack-ci image has one)
#
# A URL is fetched with curl (https, failing on HTTP errors). Nothing is built here: a
# runner that has neither gets exit 3 and the ways to provide one. Prints
# `stack --version` at the end, so the log names the commit that ran.
set -euo pipefail

log() { echo "install-stack: $*" >&2; }

# A local path stays as it is; a URL is downloaded into a temporary file.
fetch() {
    local source="$1" name="$2"
    case "$source" in
    http://* | https://*)
        local target
        target="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/stack-install.XXXXXX")/$name"
        log "downloading $source"
        curl --fail --silent --show-error --location --retry 3 --output "$target" "$source"
        echo "$target"
        ;;
    *)
        [ -f "$source" ] || {
            echo "error: \`$source\` is not a file" >&2
            exit 3
        }
        echo "$source"
        ;;
    esac
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ -n "${STACK_DEB:-}" ]; then
    deb="$(fetch "$STACK_DEB" stack.deb)"
    case "$deb" in /*) ;; *) deb="./$deb" ;; esac
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >&2
elif [ -n "${STACK_BINARY:-}" ]; then
    binary="$(fetch "$STACK_BINARY" stack)"
    bin_dir="$HOME/.local/bin"
    mkdir -p "$bin_dir"
    install -m 755 "$binary" "$bin_dir/stack"
    if [ -n "${GITHUB_PATH:-}" ]; then echo "$bin_dir" >>"$GITHUB_PATH"; fi
    export PATH="$bin_dir:$PATH"
elif ! command -v stack >/dev/null 2>&1; then
    echo "error: stack is not installed, and neither a .deb nor a binary was given" >&2
    echo "hint: pass the action's \`deb\` or \`binary\` input (a path in the checkout or a URL of a release asset), or run the job in the stack-ci image (scripts/build-ci-image.sh)" >&2
    exit 3
fi
stack --version
