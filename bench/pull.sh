#!/usr/bin/env bash
# Issue #26 benchmark (a): the first deploy of an app on a ~300 MB base image to a fresh
# VM-like machine (stack-test/vm-docker), bytes over SSH, before and after "the server
# pulls the base", side by side in one run.
#
# The public registry is played by Debian's distribution registry (stack-test/registry:2):
# this machine's engine pushes the base to it at 127.0.0.1:PORT (so the base carries a
# repo digest here, as one pulled from Docker Hub does), and each machine reaches the same
# storage at the same address through a second registry process in its network
# namespace, i.e. not through its network interface. So the bytes the machine receives on
# eth0 during the deploy are the SSH connection's (and nothing else's).
#
# before: the app's FROM names the base by a local tag with no repo digest (`before` =
#         the path every deploy took until now: the base's layers are pushed over SSH);
# after:  the app's FROM names the registry's reference: the machine pulls the base.
# Each runs on its own fresh machine. Both first deploys also copy the stack binary
# (its size is printed); stack's own count (`images_sent.bytes` of `--json`) is shown too.
# Needs: docker, the test images, ssh, ssh-keygen. Usage: bash bench/pull.sh
# (STACK_BIN=path uses a binary built beforehand)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh >/dev/null
scripts/build-test-images.sh >/dev/null
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build -q
    STACK="${CARGO_TARGET_DIR:-$(pwd)/target}/debug/stack"
fi

work=$(mktemp -d /var/tmp/stack-bench-pull.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tag="benchpull-$$"
cleanup() {
    docker rm -f -v "$tag-there" "$tag-here" "$tag-vm" >/dev/null 2>&1 || true
    docker volume rm -f "$tag-data" "$tag-vm-docker" >/dev/null 2>&1 || true
    docker rmi -f "127.0.0.1:$port/$tag-base:1" "$tag-base-local:1" >/dev/null 2>&1 || true
    docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$tag-" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

boot_vm() { # -> a fresh machine "$tag-vm", root's key in $work/key
    docker rm -f -v "$tag-vm" >/dev/null 2>&1 || true
    docker volume rm -f "$tag-vm-docker" >/dev/null 2>&1 || true
    docker run -d --name "$tag-vm" --hostname "$tag-vm" --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
        -v "$tag-vm-docker:/var/lib/docker" stack-test/vm-docker:latest >/dev/null
    for _ in $(seq 240); do
        state=$(docker exec "$tag-vm" systemctl is-system-running 2>/dev/null || true)
        ssh=$(docker exec "$tag-vm" systemctl is-active ssh 2>/dev/null || true)
        case "$state" in running|degraded) [ "$ssh" = active ] && break ;; esac
        sleep 0.5
    done
    rm -f "$work/key" "$work/key.pub"
    ssh-keygen -q -t ed25519 -N '' -f "$work/key"
    docker exec -i "$tag-vm" sh -c 'mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys' < "$work/key.pub"
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$tag-vm")
    echo "$ip $(docker exec "$tag-vm" cut -d' ' -f1-2 /etc/ssh/ssh_host_ed25519_key.pub)" > "$work/known_hosts"
    printf 'Host *\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n  IdentityFile %s\n  IdentitiesOnly yes\n' \
        "$work/known_hosts" "$work/key" > "$work/ssh_config"
    docker save stack-test/registry:2 | docker exec -i "$tag-vm" docker load -q >/dev/null
    docker run -d --name "$tag-there" -v "$tag-data:/var/lib/registry" --network "container:$tag-vm" \
        -e "REGISTRY_HTTP_ADDR=127.0.0.1:$port" stack-test/registry:2 >/dev/null
}

# The public registry, and a ~300 MB base on it (the size of a language runtime image).
docker run -d --name "$tag-here" -v "$tag-data:/var/lib/registry" -p "127.0.0.1:$port:5000" \
    stack-test/registry:2 >/dev/null
mkdir -p "$work/base"
head -c $((200 * 1024 * 1024)) /dev/urandom > "$work/base/runtime.bin"
printf 'FROM stack-test/debian:bookworm\nCOPY runtime.bin /opt/runtime.bin\n' > "$work/base/Dockerfile"
base="127.0.0.1:$port/$tag-base:1"
docker build -q -t "$base" "$work/base" >/dev/null
for _ in $(seq 50); do docker push "$base" >/dev/null 2>&1 && break; sleep 0.2; done
docker tag "$base" "$tag-base-local:1"
base_mb=$(docker image inspect -f '{{.Size}}' "$base" | awk '{printf "%.0f", $1/1e6}')

deploy() { # NAME FROM -> "seconds eth0_bytes stack_bytes"
    local proj="$work/$1"
    mkdir -p "$proj/environments/staging" "$proj/app"
    head -c $((2 * 1024 * 1024)) /dev/urandom > "$proj/app/app.bin"
    printf 'FROM %s\nCOPY app.bin /app/app.bin\nCOPY version /app/version\nCMD ["sleep", "infinity"]\n' "$2" > "$proj/app/Dockerfile"
    echo v1 > "$proj/app/version"
    printf 'STACK_PROJECT=%s\nSTACK_SERVICES=app\nSTACK_PROXY=none\nSTACK_TLS=off\nSTACK_REGISTRY_IMAGE=stack-test/registry:2\nSERVICE_APP_BUILD=./app\n' \
        "$tag-$1" > "$proj/stack.env"
    boot_vm
    printf 'SERVER_HOST=%s\nSERVER_USER=root\nSERVER_SSH_KEY=%s\n' "$ip" "$work/key" > "$proj/environments/staging/server.env"
    # Built first, so that the figure is the shipping.
    "$STACK" -C "$proj" build staging >/dev/null 2>&1 || true
    docker build -q -t "$tag-$1-app:staging" "$proj/app" >/dev/null
    local rx0 rx1 start end json
    rx0=$(docker exec "$tag-vm" cat /sys/class/net/eth0/statistics/rx_bytes)
    start=$(date +%s.%N)
    json=$(STACK_SSH_CONFIG="$work/ssh_config" "$STACK" -C "$proj" deploy staging --allow-dirty --json 2>"$work/$1.err") || {
        cat "$work/$1.err" >&2
        exit 1
    }
    end=$(date +%s.%N)
    rx1=$(docker exec "$tag-vm" cat /sys/class/net/eth0/statistics/rx_bytes)
    grep -E 'app: (the server|sent|sending)' "$work/$1.err" | sed 's/^/    /' >&2 || true
    python3 - "$start" "$end" "$((rx1 - rx0))" "$json" <<'PY'
import json, sys
start, end, rx, out = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = out.splitlines()
first = max(i for i, l in enumerate(lines) if l.startswith("{"))
sent = json.loads(chr(10).join(lines[first:]))["images_sent"]["bytes"]
print(f"{end - start:.1f} {rx} {sent}")
PY
    docker rm -f -v "$tag-there" "$tag-vm" >/dev/null
    docker volume rm -f "$tag-vm-docker" >/dev/null
}

echo "before (base by a local tag: pushed over SSH):" >&2
before=$(deploy before "$tag-base-local:1")
echo "after (base by its registry reference: pulled by the machine):" >&2
after=$(deploy after "$base")
binary_mb=$(stat -c %s "$STACK" | awk '{printf "%.1f", $1/1e6}')
BASE_MB=$base_mb BINARY_MB=$binary_mb python3 - "$before" "$after" <<'PY' | tee bench/results/pull.md
import os, sys
rows = [("before: base pushed over SSH", sys.argv[1]), ("after: the machine pulls the base", sys.argv[2])]
print("| first deploy | time (s) | received on the machine's eth0 (MB) | of it, images (stack's count, MB) |")
print("|---|---|---|---|")
for label, row in rows:
    seconds, rx, sent = row.split()
    print(f"| {label} | {seconds} | {int(rx)/1e6:.1f} | {int(sent)/1e6:.2f} |")
print()
print(f"base image: {os.environ['BASE_MB']} MB (uncompressed); app's own layers: 2 MB of random bytes + one line; "
      f"both deploys also copy the stack binary ({os.environ['BINARY_MB']} MB, debug build) once; one run each")
PY
