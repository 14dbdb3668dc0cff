#!/usr/bin/env bash
# Redeploy with nothing changed, over one SSH connection to an sshd on loopback (issue #4).
# Starts a private sshd on 127.0.0.1, deploys a 3-service project once, then times
# `stack deploy staging` with hyperfine. Needs: docker engine, local test images, sshd,
# hyperfine. Usage: bash bench/deploy.sh (STACK_BIN=path uses a binary built beforehand)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh >/dev/null
scripts/build-test-images.sh >/dev/null
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --release -q
    STACK="$(pwd)/${CARGO_TARGET_DIR:-target}/release/stack"
    [ -x "$STACK" ] || STACK="${CARGO_TARGET_DIR:-$(pwd)/target}/release/stack"
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null || true
    docker ps -aq --filter label=com.docker.compose.project=benchdeploy | xargs -r docker rm -f >/dev/null
    docker network rm benchdeploy_default >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

. bench/lib/sshd.sh
start_sshd "$work" "$port"
user=$(bench_user "$work")

proj="$work/project"
mkdir -p "$proj/environments/staging"
cat > "$proj/stack.env" <<'CFG'
STACK_PROJECT=benchdeploy
STACK_SERVICES=web,api,worker
STACK_PROXY=none
SERVICE_WEB_IMAGE=stack-test/busybox:latest
SERVICE_WEB_COMMAND=httpd -f -p 8080 -h /var/www
SERVICE_WEB_PORT=8080
SERVICE_WEB_HEALTH=/health
SERVICE_WEB_HEALTH_INTERVAL=1s
SERVICE_API_IMAGE=stack-test/busybox:latest
SERVICE_API_COMMAND=httpd -f -p 8080 -h /var/www
SERVICE_API_PORT=8080
SERVICE_API_HEALTH=/health
SERVICE_API_HEALTH_INTERVAL=1s
SERVICE_WORKER_IMAGE=stack-test/busybox:latest
SERVICE_WORKER_COMMAND=sleep 100000
CFG
staging_server "$proj" "$port" "$user" "$work"
"$STACK" -C "$proj" deploy staging --allow-dirty -q
ids_before=$(docker ps -q --filter label=com.docker.compose.project=benchdeploy | sort)
hyperfine --warmup 2 --runs 15 --export-markdown "$work/deploy.md" \
    -n "stack deploy staging (nothing changed, 3 services)" \
    "'$STACK' -C '$proj' deploy staging --allow-dirty -q" \
    -n "floor: one ssh connection running one command" \
    "ssh -F '$STACK_SSH_CONFIG' -o BatchMode=yes -p $port $user@127.0.0.1 true"
ids_after=$(docker ps -q --filter label=com.docker.compose.project=benchdeploy | sort)
[ "$ids_before" = "$ids_after" ] && echo "containers unchanged across all redeploys: yes" || echo "containers unchanged: NO"
echo "audit log outcomes of every deploy above (first line: the initial deploy):"
cut -f6- "$work/srv/audit.log" | sort | uniq -c
mkdir -p bench/results && cp "$work/deploy.md" bench/results/deploy.md
cat bench/results/deploy.md
