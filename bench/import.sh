#!/usr/bin/env bash
# `stack import compose` over every Compose fixture (fixtures-compose/*/), each in a fresh
# copy of its folder (so its build contexts and files are inside the project): the wall time per import (median, slowest) and for all of them, with the
# release binary (STACK=path to use another). Imports that refuse their file (the seeds that
# are not valid YAML as published) count like the others: they are timed to their answer.
# Usage: bash bench/import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${STACK:-}" ]; then
    cargo build --release -q
    STACK="${CARGO_TARGET_DIR:-$(pwd)/target}/release/stack"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg); binary: $STACK"
STACK="$STACK" WORK="$work" python3 - <<'PY'
import glob, os, shutil, statistics, subprocess, time
stack, work = os.environ["STACK"], os.environ["WORK"]
files = sorted(f for d in glob.glob("fixtures-compose/*/") for f in
               [os.path.join(d, n) for n in ("docker-compose.yml", "compose.yaml", "compose.yml", "docker-compose.yaml")]
               if os.path.isfile(f))
times, refused, slowest = [], 0, ("", 0.0)
for i, path in enumerate(files):
    out = os.path.join(work, str(i))
    shutil.copytree(os.path.dirname(path), out, symlinks=True)
    start = time.monotonic()
    code = subprocess.run([stack, "import", "compose", os.path.join(out, os.path.basename(path)), out, "-y", "-q"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    took = time.monotonic() - start
    times.append(took)
    refused += code != 0
    if took > slowest[1]:
        slowest = (path, took)
print(f"| Compose files | imported | refused | median | slowest | all, one after the other |")
print(f"|---:|---:|---:|---:|---:|---:|")
print(f"| {len(files)} | {len(files) - refused} | {refused} | {statistics.median(times) * 1000:.1f} ms | "
      f"{slowest[1] * 1000:.1f} ms (`{slowest[0]}`) | {sum(times):.2f} s |")
PY
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
