#!/usr/bin/env bash
# Build a static `stack` binary that runs on any x86_64 Linux server, whatever its glibc
# (Debian 11 has 2.31, Ubuntu 20.04 2.31; the default dynamic build needs 2.34+).
#
#   scripts/build-static.sh            -> target/static/stack   (under $CARGO_TARGET_DIR if set)
#   STATIC_PROFILE=ci-static scripts/build-static.sh   -> target/static/ci-static/stack
#
# Prefers musl (`x86_64-unknown-linux-musl`: fully static, its own resolver) when that rustup
# target is installed. Without it, falls back to the gnu target with `-C target-feature=+crt-static`
# (static glibc: works, but glibc's NSS is not static, so names resolve from /etc/hosts
# and DNS only). STATIC_LIBC=musl|gnu forces one. The release profile of Cargo.toml is
# used (STATIC_PROFILE names another: the tests use ci-static, a cheaper build of the same
# binary); cargo rebuilds nothing when the binary is up to date. The binary's path is printed
# on stdout, everything else on stderr. Exit 3 when no static binary can be built.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { echo "build-static: $*" >&2; }

target_dir="${CARGO_TARGET_DIR:-target}"
profile="${STATIC_PROFILE:-release}"
case "$profile" in
release) out_dir="$target_dir/static" ;;
*[!a-z0-9-]* | "") log "STATIC_PROFILE must name a Cargo profile, not \`$profile\`"; exit 3 ;;
*) out_dir="$target_dir/static/$profile" ;;
esac
libc="${STATIC_LIBC:-}"

musl_ready() {
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl
}

if [ -z "$libc" ] || [ "$libc" = musl ]; then
    # No download here: rustup's dist server is not reachable from CI machines (a
    # `rustup target add` there hangs until its timeout), so musl is used only when the
    # target is already installed.
    if musl_ready; then
        libc=musl
    elif [ "$libc" = musl ]; then
        log "STATIC_LIBC=musl, but the rustup target x86_64-unknown-linux-musl is not installed (rustup target add x86_64-unknown-linux-musl)"
        exit 3
    else
        log "no musl target installed; building a static glibc binary instead"
        libc=gnu
    fi
fi

case "$libc" in
musl)
    target=x86_64-unknown-linux-musl
    # ring (rustls' cryptography, for https notifications) compiles a little C and
    # assembly. Without a musl cross compiler, musl-gcc (musl-tools) or the host's gcc does:
    # ring's C needs no libc headers beyond the compiler's own.
    if ! command -v x86_64-linux-musl-gcc >/dev/null 2>&1 && [ -z "${CC_x86_64_unknown_linux_musl:-}" ]; then
        if command -v musl-gcc >/dev/null 2>&1; then
            export CC_x86_64_unknown_linux_musl=musl-gcc
        else
            export CC_x86_64_unknown_linux_musl=gcc
        fi
    fi
    # +crt-static explicitly: newer toolchains may link musl targets dynamically by default.
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --profile "$profile" --locked --target "$target" >&2
    ;;
gnu)
    target=x86_64-unknown-linux-gnu
    # With an explicit --target, RUSTFLAGS do not reach build scripts and proc macros,
    # which stay dynamic host binaries; only `stack` is linked statically.
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --profile "$profile" --locked --target "$target" >&2
    ;;
*)
    log "STATIC_LIBC must be musl or gnu, not \`$libc\`"
    exit 3
    ;;
esac

built="$target_dir/$target/$profile/stack"
if [ ! -x "$built" ]; then
    log "cargo finished but $built is missing"
    exit 3
fi
# A static binary has no interpreter (no PT_INTERP program header).
if LC_ALL=C readelf -l "$built" 2>/dev/null | grep -q 'Requesting program interpreter'; then
    log "$built is dynamically linked; the static build failed"
    exit 3
fi
mkdir -p "$out_dir"
if ! cmp -s "$built" "$out_dir/stack"; then
    # A name of this run's own, then a rename: builds at once (tests) do not collide.
    cp "$built" "$out_dir/stack.new.$$"
    mv -f "$out_dir/stack.new.$$" "$out_dir/stack"
fi
log "static ($libc) binary: $out_dir/stack ($(du -h "$out_dir/stack" | cut -f1))"
echo "$(cd "$out_dir" && pwd)/stack"
