#!/usr/bin/env bash
# Benchmark for the hostile-input issue: a committed project file must not take down a CI
# runner. Run from the repository root: `bash bench/hostile.sh`. STACK_BIN=path uses a binary built beforehand.
#
# Generates (in a temp dir):
#   mistakes/  a ~200 KB stack.env with 1000 mistakes (unknown attributes, bad numbers,
#              bad durations, unknown dependencies) among 200 valid services
#   doubling/  40 lines of `A<n+1>=${A<n>}${A<n>}` (an interpolation bomb)
#   refs/      one 64-byte key referenced 40 000 times
#   big/       a 3.9 MB file of comments and one valid service
# and for each reports, side by side with the peer (Debian's docker-compose v1 `config -q`
# on a compose file of the same size where one applies):
#   - hyperfine wall time of `stack build --check` (exit 2 expected: --ignore-failure)
#   - the peak RSS (`/usr/bin/time -f %M`) of one run.
# Goals: the mistakes file finishes in under 1 s; no input under 4 MB uses over 200 MB.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
OUT_DIR=${OUT_DIR:-bench/results}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
for cmd in hyperfine python3 /usr/bin/time; do
    command -v "$cmd" >/dev/null || { echo "bench/hostile.sh: \`$cmd\` not found (apt-get install hyperfine time)" >&2; exit 2; }
done
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --release --quiet
    STACK="$(cd "$TARGET_DIR/release" && pwd)/stack"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT_DIR" "$work"/{mistakes,doubling,refs,big}

python3 - "$work" <<'PY'
import sys, os
w = sys.argv[1]
lines = ["STACK_PROJECT=hostile", "STACK_TLS=off"]
names = [f"svc{i}" for i in range(200)]
lines.append("STACK_SERVICES=" + ",".join(names))
mistakes = 0
for i, n in enumerate(names):
    k = n.upper()
    lines += [f"SERVICE_{k}_IMAGE=registry.example.com/team/{n}:1.2.{i}",
              f"SERVICE_{k}_PORT=8080",
              f"SERVICE_{k}_ENV_DATABASE_URL=postgres://app@db:5432/{n}?sslmode=disable&application_name={n}",
              f"SERVICE_{k}_ENV_FEATURE_FLAGS=alpha,beta,gamma,delta,epsilon,zeta,eta,theta,iota,kappa"]
    for j in range(5):
        kind = (i * 5 + j) % 4
        if kind == 0: lines.append(f"SERVICE_{k}_HEALTH_INTERVL{j}=10s")
        elif kind == 1: lines.append(f"SERVICE_{k}_REPLICAS=many{j}")
        elif kind == 2: lines.append(f"SERVICE_{k}_HEALTH_TIMEOUT=soon{j}")
        else: lines.append(f"SERVICE_{k}_DEPENDS_ON=nosuch{j}")
        mistakes += 1
text = "\n".join(lines) + "\n"
while len(text) < 200_000:
    text += "# " + "padding comment " * 6 + "\n"
open(f"{w}/mistakes/stack.env", "w").write(text)
d = ["STACK_PROJECT=bomb", "A0=xxxxxxxxxxxxxxxx"] + [f"A{i+1}=${{A{i}}}${{A{i}}}" for i in range(40)]
d += ["STACK_SERVICES=web", "SERVICE_WEB_IMAGE=busybox", "SERVICE_WEB_ENV_X=${A40}"]
open(f"{w}/doubling/stack.env", "w").write("\n".join(d) + "\n")
r = ["STACK_PROJECT=refs", "V=" + "v" * 64, "STACK_SERVICES=web", "SERVICE_WEB_IMAGE=busybox",
     "SERVICE_WEB_ENV_X=" + "$V" * 40000]
open(f"{w}/refs/stack.env", "w").write("\n".join(r) + "\n")
b = ["STACK_PROJECT=big", "STACK_SERVICES=web", "SERVICE_WEB_IMAGE=busybox"]
body = "\n".join(b) + "\n"
while len(body) < 3_900_000:
    body += "# " + "x" * 100 + "\n"
open(f"{w}/big/stack.env", "w").write(body)
print(f"mistakes: {len(text)} bytes, {mistakes} mistakes", file=sys.stderr)
PY

results="$OUT_DIR/hostile.md"
: > "$results"
echo "| input (\`stack build --check\`) | size (bytes) | exit | peak RSS (MB) |" >> "$results"
echo "|:---|---:|---:|---:|" >> "$results"
for case in mistakes doubling refs big; do
    dir="$work/$case"
    size=$(stat -c %s "$dir/stack.env")
    set +e
    /usr/bin/time -f %M -o "$work/rss" "$STACK" -C "$dir" build --check >/dev/null 2>&1
    code=$?
    rss=$(tail -1 "$work/rss")
    set -e
    echo "| $case | $size | $code | $(echo "scale=1; $rss / 1024" | bc -l) |" >> "$results"
done
cat "$results"

peer=()
if command -v docker-compose >/dev/null; then
    # The peer: docker-compose v1 validating a compose file of about the same size with
    # 1000 unknown keys (it stops at the first ones, like a schema check does).
    python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
out = ["version: '3.8'", "services:"]
for i in range(200):
    out += [f"  svc{i}:", f"    image: registry.example.com/team/svc{i}:1.2.{i}",
            "    environment:", f"      DATABASE_URL: postgres://app@db:5432/svc{i}"]
    out += [f"    healthcheck_intervl{j}: 10s" for j in range(5)]
open(f"{w}/compose-mistakes.yml", "w").write("\n".join(out) + "\n")
PY
    peer=(-n "docker-compose v1 config -q (1000 unknown keys)" "docker-compose -f $work/compose-mistakes.yml config -q")
fi
hyperfine --runs "$RUNS" --warmup 2 --shell=none --ignore-failure \
    --export-markdown "$OUT_DIR/hostile-time.md" \
    -n "stack build --check (200 KB, 1000 mistakes)" "$STACK -C $work/mistakes build --check" \
    -n "stack build --check (interpolation bomb)" "$STACK -C $work/doubling build --check" \
    "${peer[@]}"
cat "$OUT_DIR/hostile-time.md"
