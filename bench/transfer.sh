#!/usr/bin/env bash
# Redeploy after a one-line change in a >= 300 MB image (issue #12): bytes over the wire
# and time, shipping only the missing layers (STACK_IMAGE_TRANSFER=registry, the default)
# against the whole image as one archive (STACK_IMAGE_TRANSFER=archive, what every
# deploy did before), side by side in one run.
#
# The server is a second Docker engine with its own data root (so it really lacks the
# new image) behind a private sshd on loopback. The image: stack-test/debian:bookworm +
# 300 MB of random bytes + a one-line file. Each timed run changes that line first.
# Needs: docker, the test images, sshd, dockerd, iproute2. Usage: bash bench/transfer.sh [RUNS]
# (STACK_BIN=path uses a binary built beforehand)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
scripts/ensure-docker.sh >/dev/null
scripts/build-test-images.sh >/dev/null
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --release -q
    STACK="${CARGO_TARGET_DIR:-$(pwd)/target}/release/stack"
fi

work=$(mktemp -d /var/tmp/stack-bench-transfer.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bridge="stkbench$$"
bridge=${bridge:0:15}
engine_sock="$work/engine/docker.sock"
cleanup() {
    [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
    if [ -f "$work/engine/docker.pid" ]; then
        docker -H "unix://$engine_sock" ps -aq | xargs -r docker -H "unix://$engine_sock" rm -f >/dev/null 2>&1 || true
        pid=$(cat "$work/engine/docker.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    grep " $work" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip link delete "$bridge" 2>/dev/null || true
    docker images -q 'benchxfer-*' | sort -u | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$work" "/run/stk-benchxfer-$$"
}
trap cleanup EXIT

# The server's engine.
mkdir -p "$work/engine"
ip link add name "$bridge" type bridge
ip addr add "10.213.250.1/24" dev "$bridge"
ip link set "$bridge" up
dockerd --host "unix://$engine_sock" --data-root "$work/engine/data" --exec-root "/run/stk-benchxfer-$$" \
    --pidfile "$work/engine/docker.pid" --bridge "$bridge" --iptables=false --ip6tables=false \
    --default-address-pool base=10.250.0.0/16,size=24 >"$work/engine/dockerd.log" 2>&1 &
for _ in $(seq 100); do docker -H "unix://$engine_sock" info >/dev/null 2>&1 && break; sleep 0.2; done
docker save stack-test/registry:2 | docker -H "unix://$engine_sock" load -q >/dev/null

# The sshd in front of it.
. bench/lib/sshd.sh
start_sshd "$work" "$port"
user=$(bench_user "$work")

proj="$work/project"
mkdir -p "$proj/environments/staging" "$proj/app" "$work/base"
# The 300 MB are in a base image built once (as a team's big runtime image would be); the
# app's own layer is the one line that changes.
head -c $((300 * 1024 * 1024)) /dev/urandom > "$work/base/data.bin"
printf 'FROM stack-test/debian:bookworm\nCOPY data.bin /opt/data.bin\n' > "$work/base/Dockerfile"
docker build -q -t benchxfer-base:1 "$work/base" >/dev/null
cat > "$proj/app/Dockerfile" <<'DOCKERFILE'
FROM benchxfer-base:1
COPY version /www/version
CMD ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]
DOCKERFILE
echo v0 > "$proj/app/version"
cat > "$proj/stack.env" <<CFG
STACK_PROJECT=benchxfer
STACK_SERVICES=app
STACK_PROXY=none
STACK_REGISTRY_IMAGE=stack-test/registry:2
SERVICE_APP_BUILD=./app
SERVICE_APP_STRATEGY=recreate
CFG
staging_server "$proj" "$port" "$user" "$work" "SERVER_DOCKER_SOCKET=$engine_sock"
deploy() { # MODE VERSION -> "seconds bytes"
    echo "$2" > "$proj/app/version"
    # Build first so the timing is the shipping and rollout, not the build.
    docker build -q -t "benchxfer-app:staging" "$proj/app" >/dev/null
    local start end json
    start=$(date +%s.%N)
    json=$("$STACK" -C "$proj" deploy staging --allow-dirty --json --set "STACK_IMAGE_TRANSFER=$1" 2>"$work/deploy.err") || {
        cat "$work/deploy.err" >&2
        exit 1
    }
    end=$(date +%s.%N)
    python3 - "$start" "$end" "$json" <<'PY'
import json, sys
start, end, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
lines = out.splitlines()
first = max(i for i, l in enumerate(lines) if l.startswith("{"))
print(f"{end - start:.2f} {json.loads(chr(10).join(lines[first:]))['images_sent']['bytes']}")
PY
}
echo "first deploy (the server has nothing of it yet), registry:" >&2
deploy registry v1 >/dev/null
declare -a reg=() arc=()
for i in $(seq "$runs"); do
    reg+=("$(deploy registry "r$i")")
    arc+=("$(deploy archive "a$i")")
done
image_mb=$(docker image inspect -f '{{.Size}}' benchxfer-base:1 | awk '{print int($1/1e6)}')
IMAGE_MB=$image_mb python3 - "${reg[@]}" -- "${arc[@]}" <<'PY' | tee bench/results/transfer.md
import os, statistics, sys
image_mb = os.environ["IMAGE_MB"]
args = sys.argv[1:]
split = args.index("--")
def parse(items):
    pairs = [tuple(map(float, item.split())) for item in items]
    return [p[0] for p in pairs], [p[1] for p in pairs]
rt, rb = parse(args[:split]); at, ab = parse(args[split + 1:])
print("| transfer | redeploy time (mean ± sd, s) | bytes sent (mean) |")
print("|---|---|---|")
sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
print(f"| only missing layers (`registry`) | {statistics.mean(rt):.2f} ± {sd(rt):.2f} | {statistics.mean(rb)/1e3:.1f} kB |")
print(f"| whole image (`archive`) | {statistics.mean(at):.2f} ± {sd(at):.2f} | {statistics.mean(ab)/1e6:.1f} MB |")
print()
print(f"image: {image_mb} MB; bytes: {100*statistics.mean(rb)/statistics.mean(ab):.4f} % of the archive; time: {statistics.mean(at)/statistics.mean(rt):.1f}x faster ({len(rt)} runs each)")
PY
