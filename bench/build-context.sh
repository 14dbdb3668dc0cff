#!/usr/bin/env bash
# Benchmark (b) of issue 26: a one-line change in a project with a 300 MB build context.
# Time from the command to the "built" line, and the bytes sent to the builder, for
# stack's classic path (STACK_BUILDER=classic: the whole context as one tar, what every
# build did before) against BuildKit's session (the default), side by side in one run;
# plus an unchanged build (skipped by its fingerprint).
#
# The project: one BUILD service whose context holds 300 MB of random files in vendor/
# (copied by the Dockerfile's first COPY) and a small src/main.txt (the second COPY).
# Each timed run changes one line of src/main.txt first. The command is
# `stack start --build -v`; the time is taken when its stderr shows "built `" (or "is up
# to date"), before the container is recreated.
# Needs: docker, the test images. Usage: bash bench/build-context.sh [RUNS] [MEGABYTES]
# STACK (a binary) defaults to the debug build in CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
megabytes="${2:-300}"
STACK="${STACK:-${CARGO_TARGET_DIR:-$(pwd)/target}/debug/stack}"
[ -x "$STACK" ] || cargo build -q
work=$(mktemp -d /var/tmp/stack-bench-context.XXXXXX)
name="benchctx$$"
cleanup() {
    (cd "$work/p" && "$STACK" down >/dev/null 2>&1) || true
    docker images -q "$name-app" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/p/app/vendor" "$work/p/app/src" "$work/cache"
for i in $(seq -w 1 "$megabytes"); do
    head -c 1048576 /dev/urandom >"$work/p/app/vendor/part-$i.bin"
done
printf 'line one\nline two\n' >"$work/p/app/src/main.txt"
printf 'FROM stack-test/busybox:latest\nCOPY vendor/ /app/vendor/\nCOPY src/ /app/src/\nCMD ["sleep", "3600"]\n' >"$work/p/app/Dockerfile"
cat >"$work/p/stack.env" <<ENV
STACK_PROJECT=$name
STACK_PROXY=none
STACK_SERVICES=app
SERVICE_APP_BUILD=./app
SERVICE_APP_IMAGE=$name-app:dev
SERVICE_APP_COMMAND=sleep 3600
ENV
echo "machine: $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg); context: $(du -sh "$work/p/app" | cut -f1)"
echo "binary:  $STACK"
trap 'echo "load at the end: $(cut -d" " -f1-3 /proc/loadavg)"; cleanup' EXIT

WORK="$work" STACK="$STACK" RUNS="$runs" python3 - <<'PY'
import json, os, statistics, subprocess, time
work, stack, runs = os.environ["WORK"], os.environ["STACK"], int(os.environ["RUNS"])
env = dict(os.environ, XDG_CACHE_HOME=f"{work}/cache", CI="true")

# Where the time goes, from the -v lines' arrival: stack's own work until the build step
# (load, render, connect, observe), the context walk and fingerprint, then the session and
# the build request until the engine's first line, then the engine until "built".
MARKS = [("building `", "load, render, connect, observe"),
         ("context: ", "walk + fingerprint"),
         ("[internal] load build definition", "session + request, until the engine's first line"),
         ("built `", "the engine: Dockerfile, context sync, COPY, export, tag")]

def run(builder, change):
    if change:
        with open(f"{work}/p/app/src/main.txt", "w") as f:
            f.write(f"line one\nline {time.time_ns()}\n")
    e = dict(env, STACK_BUILDER=builder)
    start = time.monotonic()
    p = subprocess.Popen([stack, "start", "--build", "--json", "-v"], cwd=f"{work}/p", env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    built, marks = None, {}
    for line in p.stderr:
        now = time.monotonic() - start
        for mark, _ in MARKS:
            if mark in line and mark not in marks:
                marks[mark] = now
        if built is None and ("built `" in line or "is up to date" in line):
            built = now
    out = p.stdout.read()
    assert p.wait() == 0, f"stack failed ({builder})"
    sent = json.loads(out).get("bytes", {}).get("build_context", 0)
    return built, sent, marks

run("auto", False)  # first build: the builder gets everything once
rows = {"classic (whole context)": [], "BuildKit session": [], "unchanged (skipped)": []}
for _ in range(runs):
    rows["classic (whole context)"].append(run("classic", True))
    rows["BuildKit session"].append(run("auto", True))
    rows["unchanged (skipped)"].append(run("auto", False))
print()
print("| one-line change, 300 MB context | time to \"built\" (median) | runs | bytes sent to the builder |")
print("|---|---|---|---|")
for label, values in rows.items():
    times = [t for t, _, _ in values]
    sent = [s for _, s, _ in values]
    print(f"| {label} | {statistics.median(times):.2f} s | {', '.join(f'{t:.2f}' for t in times)} | {statistics.median(sent):,.0f} |")
print()
print("| BuildKit one-line change: phase | median (s) | runs |")
print("|---|---|---|")
previous = [0.0] * runs
for mark, label in MARKS:
    at = [m[2].get(mark) for m in rows["BuildKit session"]]
    if any(a is None for a in at):
        print(f"| {label} | (no line) | |")
        continue
    spans = [a - b for a, b in zip(at, previous)]
    previous = at
    print(f"| {label} | {statistics.median(spans):.3f} | {', '.join(f'{x:.3f}' for x in spans)} |")
PY
