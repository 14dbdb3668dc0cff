#!/usr/bin/env bash
# Benchmark for "a deploy of a real application in seconds", item 3: rolling out
# independent services together. Two stack binaries, side by side in ONE hyperfine run:
#   BEFORE=path/to/stack AFTER=path/to/stack bash bench/rollout.sh
# (e.g. BEFORE = a build of main, AFTER = a build of the branch; RUNS=5, SERVICES=4;
# CHAIN=1 makes each service depend on the one before: `s2` on `s1`, and so on).
#
# Project (one copy per binary, `rolloutbefore` / `rolloutafter`): SERVICES independent
# busybox services `s1…sN`, each a shell that ignores SIGTERM (`trap "" TERM`) with
# STOP_GRACE=3s, a health command (`true`, every 1 s) and so the rolling strategy; no
# proxy, no routes, nothing depends on them. Each timed command is `stack start` with a
# new `SERVICE_Sk_ENV_VERSION` for every service (a fresh value per run, so every run
# replaces every container): start the new container, wait until it is healthy, then
# (before) drain 2 s and stop the old one within the service's turn, or (after) no drain
# (nothing reaches them by name) and the old one's stop joined at the end.
# Writes the markdown table to $OUT (default bench/results/rollout.md) and prints it.
set -euo pipefail

cd "$(dirname "$0")/.."
: "${BEFORE:?set BEFORE to the stack binary to compare against}"
: "${AFTER:?set AFTER to the stack binary under test}"
OUT=${OUT:-bench/results/rollout.md}
RUNS=${RUNS:-5}
SERVICES=${SERVICES:-4}
export NO_COLOR=1 CI=true
unset STACK_ENV

WORK=$(mktemp -d)
cleanup() {
    for which in before after; do
        "$WORK/stack-$which" -C "$WORK/$which" down --volumes >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
cp "$BEFORE" "$WORK/stack-before"
cp "$AFTER" "$WORK/stack-after"

sets=""
for which in before after; do
    mkdir -p "$WORK/$which"
    {
        echo "STACK_PROJECT=rollout$which"
        echo "STACK_TLS=off"
        echo "STACK_PROXY=none"
        echo "STACK_SERVICES=$(seq -s, -f 's%g' 1 "$SERVICES")"
        for k in $(seq 1 "$SERVICES"); do
            echo "SERVICE_S${k}_IMAGE=stack-test/busybox:latest"
            echo "SERVICE_S${k}_COMMAND=sh -c 'trap \"\" TERM; while true; do sleep 1; done'"
            echo "SERVICE_S${k}_HEALTH_CMD=true"
            echo "SERVICE_S${k}_HEALTH_INTERVAL=1s"
            echo "SERVICE_S${k}_STOP_GRACE=3s"
            echo "SERVICE_S${k}_ENV_VERSION=0"
            if [ "${CHAIN:-0}" = 1 ] && [ "$k" -gt 1 ]; then
                echo "SERVICE_S${k}_DEPENDS_ON=s$((k - 1))"
            fi
        done
    } >"$WORK/$which/stack.env"
    "$WORK/stack-$which" -C "$WORK/$which" start >/dev/null 2>&1
done
for k in $(seq 1 "$SERVICES"); do
    sets="$sets --set SERVICE_S${k}_ENV_VERSION=\$(date +%s%N)"
done

hyperfine --runs "$RUNS" --export-markdown "$OUT" \
    -n before "$WORK/stack-before -C $WORK/before start$sets" \
    -n after "$WORK/stack-after -C $WORK/after start$sets"
cat "$OUT"
