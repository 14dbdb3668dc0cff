#!/usr/bin/env bash
# Build the Debian package of stack: the static binary (scripts/build-static.sh), man pages
# generated from the command-line definition (`stack __man DIR`, the binary's own clap
# types), and shell completions (`stack completions SHELL`) where Debian's shells read them.
#
#   scripts/build-deb.sh          -> target/deb/stack_<version>_amd64.deb   (under $CARGO_TARGET_DIR if set)
#
# STACK_BINARY=PATH packages that binary instead of building one (an arm64 binary built
# on an arm64 machine: DEB_ARCH=arm64; the man pages and completions then come from
# the binary that runs here, which has the same command line). The package has no
# Depends (the binary is static). The .deb's path is printed on stdout, everything else on
# stderr. Exit 3 when a tool is missing or a step fails.
set -euo pipefail

cd "$(dirname "$0")/.."
log() { echo "build-deb: $*" >&2; }
fail() { log "$*"; exit 3; }

for tool in dpkg-deb gzip; do
    command -v "$tool" >/dev/null 2>&1 || fail "\`$tool\` is missing (install the Debian package dpkg / gzip)"
done

target_dir="${CARGO_TARGET_DIR:-target}"
arch="${DEB_ARCH:-amd64}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[ -n "$version" ] || fail "no version in Cargo.toml"

if [ -n "${STACK_BINARY:-}" ]; then
    binary="$STACK_BINARY"
else
    [ "$arch" = amd64 ] || fail "DEB_ARCH=$arch needs STACK_BINARY (a $arch binary built on such a machine)"
    binary="$(scripts/build-static.sh)"
fi
[ -x "$binary" ] || fail "no binary at \`$binary\`"
# The binary that generates pages and completions must run here.
generator="$binary"
if ! "$generator" --version >/dev/null 2>&1; then
    generator="${STACK_GENERATOR:-}"
    [ -n "$generator" ] && [ -x "$generator" ] || fail "\`$binary\` does not run here: set STACK_GENERATOR to a stack binary that does"
fi

out_dir="$target_dir/deb"
mkdir -p "$out_dir"
# A staging folder of this run's own: two builds at once (tests) must not share one.
root="$(mktemp -d "$out_dir/root-$arch.XXXXXX")"
trap 'rm -rf "$root" "${staged:-}"' EXIT
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/doc/stack" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"

install -m 0755 "$binary" "$root/usr/bin/stack"
# Debian ships binaries without their symbol tables (lintian: unstripped-binary-or-object).
strip --strip-unneeded "$root/usr/bin/stack" 2>/dev/null || log "\`strip\` failed or is missing (binutils); the binary keeps its symbols"
"$generator" __man "$root/usr/share/man/man1" >/dev/null
# -n: no file name or time in the gzip header, so the package is reproducible.
gzip -9 -n "$root"/usr/share/man/man1/*.1
"$generator" completions bash >"$root/usr/share/bash-completion/completions/stack"
"$generator" completions zsh >"$root/usr/share/zsh/vendor-completions/_stack"
"$generator" completions fish >"$root/usr/share/fish/vendor_completions.d/stack.fish"

commit="$("$generator" --version | sed -n 's/.*(commit \(.*\))$/\1/p')"
date_rfc="$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
{
    echo "stack ($version) unstable; urgency=medium"
    echo
    echo "  * Built from commit ${commit:-unknown}; see CHANGELOG.md in the source."
    echo
    echo " -- stack maintainers <stack@example.org>  $date_rfc"
} | gzip -9 -n >"$root/usr/share/doc/stack/changelog.gz"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: stack"
    echo
    echo "Files: *"
    echo "Copyright: the stack authors"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' LICENSE
} >"$root/usr/share/doc/stack/copyright"

# lintian: a static binary is this package's point (it runs on any glibc), not a bug.
mkdir -p "$root/usr/share/lintian/overrides"
# unsafe-libyaml-norway is a Rust translation of libyaml, compiled in like every crate:
# there is no libyaml package it could use instead.
cat >"$root/usr/share/lintian/overrides/stack" <<'OVERRIDES'
stack: statically-linked-binary [usr/bin/stack]
stack: shared-library-lacks-prerequisites [usr/bin/stack]
stack: embedded-library libyaml [usr/bin/stack]
OVERRIDES

find "$root" -type d -exec chmod 0755 {} +
find "$root/usr/share" -type f -exec chmod 0644 {} +
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<CONTROL
Package: stack
Version: $version
Architecture: $arch
Maintainer: stack maintainers <stack@example.org>
Installed-Size: $installed_size
Section: admin
Priority: optional
Description: render, run and deploy a Docker Compose stack from one project file
 stack reads a .env-style project file and renders docker-compose, Caddy or
 nginx and systemd files from it, converges the local Docker engine, and
 deploys releases to a server over SSH. This package holds the static
 binary (no shared libraries), its man pages and shell completions for
 bash, zsh and fish.
CONTROL

deb="$out_dir/stack_${version}_${arch}.deb"
# Built and checked under a name of its own, then renamed: a reader never sees half a package.
staged="$out_dir/.stack_${version}_${arch}.$$.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$staged" >&2
if command -v lintian >/dev/null 2>&1; then
    # Errors fail the build; warnings are shown.
    lintian --fail-on error "$staged" >&2 || fail "lintian found errors in $deb"
else
    log "lintian is not installed; the package was not checked"
fi
mv -f "$staged" "$deb"
log "$deb ($(du -h "$deb" | cut -f1), commit ${commit:-unknown})"
echo "$(cd "$out_dir" && pwd)/$(basename "$deb")"
