#!/usr/bin/env bash
# Benchmark for issue #2: `stack build` of a 50-service project renders in under 20 ms wall
# time (release build). Run from the repository root: `bash bench/build.sh`.
#
# Builds the release binary, generates an N-service project (bench/gen-project.py) into a
# temp dir, runs one warm-up build (which also generates the dev secrets), then one hyperfine
# run with three commands side by side:
#   1. stack -C DIR build            (the issue's goal)
#   2. stack -C DIR build --check    (render in memory and compare with the bundle on disk)
#   3. docker-compose -f .../docker-compose.v1.yml config -q
#      the peer: Debian's docker-compose v1 parsing and validating the same rendered file.
#      v1 rejects the top-level `name:` key, so that line is stripped into a copy. The copy
#      lives in a copy of the bundle dir (next to the bundle's `.env`, so Compose still finds
#      it for interpolation): `stack build` swaps in a fresh `.stack/dev/` on every run, which
#      would delete a file kept in the bundle dir itself halfway through the hyperfine run.
#
# Environment:
#   SIZES        service counts to benchmark, space-separated (default "50")
#   RUNS         hyperfine --runs (default 50)
#   WARMUP       hyperfine --warmup (default 5)
#   OUT_DIR      where the markdown tables go (default bench/results)
#   CARGO_TARGET_DIR is honoured (default target/). STACK_BIN=path uses a binary built beforehand.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=${SIZES:-50}
RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
OUT_DIR=${OUT_DIR:-bench/results}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for cmd in hyperfine python3; do
    command -v "$cmd" >/dev/null || { echo "bench/build.sh: \`$cmd\` not found" >&2; exit 2; }
done
HAVE_COMPOSE=1
command -v docker-compose >/dev/null || { HAVE_COMPOSE=0; echo "bench/build.sh: docker-compose not found; skipping the peer" >&2; }

if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --release --quiet
    STACK="$(cd "$TARGET_DIR/release" && pwd)/stack"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stack-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"

echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "binary:  $STACK ($("$STACK" --version 2>/dev/null || echo '?'))"

for n in $SIZES; do
    dir="$WORK/p$n"
    python3 bench/gen-project.py "$n" "$dir"
    # Warm-up build: generates environments/dev/secrets.env and the bundle on disk.
    "$STACK" -C "$dir" build --quiet >/dev/null 2>&1 || "$STACK" -C "$dir" build
    bundle="$dir/.stack/dev"
    "$STACK" -C "$dir" build --check >/dev/null 2>&1 \
        || { echo "bench/build.sh: bundle is stale right after build ($n services)" >&2; exit 1; }

    cmds=(
        -n "stack build ($n services)" "$STACK -C $dir build"
        -n "stack build --check ($n services)" "$STACK -C $dir build --check"
    )
    if [ "$HAVE_COMPOSE" = 1 ]; then
        peer="$WORK/peer$n"
        cp -a "$bundle" "$peer"
        grep -v '^name:' "$bundle/docker-compose.yml" >"$peer/docker-compose.v1.yml"
        docker-compose -f "$peer/docker-compose.v1.yml" config -q
        cmds+=(-n "docker-compose v1 config -q ($n services)"
               "docker-compose -f $peer/docker-compose.v1.yml config -q")
    fi
    echo
    echo "== $n services: $(wc -l <"$dir/stack.env") lines of stack.env, $(wc -l <"$bundle/docker-compose.yml") lines of docker-compose.yml"
    hyperfine --shell=none --warmup "$WARMUP" --runs "$RUNS" \
        --export-markdown "$OUT_DIR/build-$n.md" "${cmds[@]}"
done

echo
echo "markdown tables in $OUT_DIR/:"
for n in $SIZES; do cat "$OUT_DIR/build-$n.md"; echo; done
