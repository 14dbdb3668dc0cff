#!/usr/bin/env bash
# Build the image for CI runners that run jobs in an image (GitLab's docker executor,
# `container:` in GitHub Actions): stack, bash, git, the OpenSSH client, ca-certificates,
# and ci/stack-ci.sh at /usr/local/lib/stack/ci/stack-ci.sh (what the GitLab template runs).
# No registry is needed: the base is the minbase Debian 12 that
# scripts/build-test-images.sh makes with debootstrap (built here when missing).
#
#   scripts/build-ci-image.sh             -> stack-ci:<version of Cargo.toml>
#   STACK_BINARY=PATH                     the binary to put in (default: scripts/build-static.sh,
#                                         which builds the static binary once and reuses it)
#   STACK_CI_TAG=name:tag                 another tag (the tests use their own)
#
# Prints the tag on stdout, its size on stderr. Exit 3 when something cannot be built.
set -euo pipefail

export DOCKER_BUILDKIT=0 # the classic builder never pulls a FROM image
cd "$(dirname "$0")/.."
log() { echo "build-ci-image: $*" >&2; }

base=stack-test/debian:bookworm
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
tag="${STACK_CI_TAG:-stack-ci:$version}"

if ! docker image inspect "$base" >/dev/null 2>&1; then
    log "building the base $base"
    ONLY=debian scripts/build-test-images.sh >&2
fi
binary="${STACK_BINARY:-}"
if [ -z "$binary" ]; then
    binary="$(scripts/build-static.sh)"
fi
if [ ! -x "$binary" ]; then
    log "\`$binary\` is not an executable file"
    exit 3
fi

context="$(mktemp -d "${TMPDIR:-/var/tmp}/stack-ci-image.XXXXXX")"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/stack"
cp ci/stack-ci.sh ci/install-stack.sh "$context/"
# Modes set here travel with COPY; a chmod in a RUN would store the binary twice.
chmod 755 "$context/stack" "$context/stack-ci.sh" "$context/install-stack.sh"
# The packages come first, so a new binary rebuilds only the last layers.
cat >"$context/Dockerfile" <<DOCKERFILE
FROM $base
RUN stack-apt-install bash git openssh-client ca-certificates
COPY stack /usr/local/bin/stack
COPY stack-ci.sh install-stack.sh /usr/local/lib/stack/ci/
RUN ln -s /usr/local/lib/stack/ci/stack-ci.sh /usr/local/bin/stack-ci \\
    && git config --system --add safe.directory '*' \\
    && stack --version
ENV CI=true
WORKDIR /src
CMD ["bash"]
DOCKERFILE
log "building $tag from $binary"
if ! docker build --network host --force-rm --tag "$tag" "$context" >"$context/build.log" 2>&1; then
    tail -n 40 "$context/build.log" >&2
    log "building $tag failed (log above)"
    exit 3
fi
size="$(docker image inspect --format '{{.Size}}' "$tag")"
log "built $tag: $((size / 1000000)) MB ($(du -h "$binary" | cut -f1) of it the binary)"
echo "$tag"
