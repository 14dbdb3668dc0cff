#!/usr/bin/env bash
# Benchmark for issue #5: a rolling update under load, `stack start` against Debian's
# docker-compose `up -d` on the same rendered bundle, side by side in one run, through
# Caddy and through nginx. Run from the repository root:
#   bash bench/rolling.sh                 # PROXIES="caddy nginx" REPLICAS_LIST="1 2"
#
# Project: one service `web`, busybox httpd (stack-test/busybox:latest) answering its
# version (`v1`, then `v2`) on `/`, HTTP health check every 1 s, routed at `web.localhost`
# through the proxy (stack-test/caddy or stack-test/nginx, STACK_TLS=off). stack runs it as
# project `rollstack` on one HTTP port; compose runs a copy of the bundle stack rendered
# (top-level `name:` removed, v1 rejects it; project and port renamed so the two never
# share a network or a port) as `rollcompose`, from the bundle directory so `.env` is found.
#
# For each proxy and replica count, one after the other (never both loads at once):
#   stack:    both projects at v1; bench/load.py runs through stack's proxy (sequential,
#             ~100 requests/s, loopback only, at most 60 s / 6000 requests); after LEAD
#             seconds `stack start --set SERVICE_WEB_ENV_VERSION=2` (timed); TAIL seconds
#             later the load stops.
#   compose:  the same through compose's proxy, with `docker-compose up -d` on the v2 copy.
# Columns: requests sent, failed (connect error, timeout or non-200), slowest request,
# p99, update duration (the command's wall time), and answers from the old version after
# the command returned.
#
# Both starts of stack pass the version with --set, so only the version differs between them.
# Writes the markdown table to $OUT (default bench/results/rolling.md) and prints it; raw
# load summaries go to bench/results/rolling/. Needs docker, docker-compose, python3, the
# test images. CARGO_TARGET_DIR is honoured (default target/); STACK_BIN=path skips the build.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/rolling.md}
RAW=bench/results/rolling
PROXIES=${PROXIES:-caddy nginx}
REPLICAS_LIST=${REPLICAS_LIST:-1 2}
LEAD=${LEAD:-5}
TAIL=${TAIL:-5}
RATE=${RATE:-100}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for cmd in docker docker-compose python3 curl bc; do
    command -v "$cmd" >/dev/null || { echo "bench/rolling.sh: \`$cmd\` not found" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
for image in stack-test/busybox:latest stack-test/caddy:latest stack-test/nginx:latest; do
    docker image inspect "$image" >/dev/null 2>&1 || scripts/build-test-images.sh
done

if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand (e.g. while the tree does not build)
else
    cargo build --release --quiet
    STACK="$(cd "$TARGET_DIR/release" && pwd)/stack"
fi
export NO_COLOR=1 CI=true
unset STACK_ENV

WORK=$(mktemp -d)
SP=rollstack
CP=rollcompose
SDIR=$WORK/stack
CDIR=$WORK/compose
mkdir -p "$SDIR" "$CDIR" "$RAW"
LOAD_PID=

stack() { "$STACK" -C "$SDIR" "$@"; }
compose() { (cd "$CDIR" && docker-compose -p "$CP" "$@"); }
cleanup() {
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
    stack down --volumes >/dev/null 2>&1 || true
    compose down -v -t 1 >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# Wait until 127.0.0.1:$1 answers $2 for web.localhost; 30 s cap.
wait_answer() {
    local port=$1 want=$2 deadline=$((SECONDS + 30))
    until [ "$(curl -s -m 1 -H 'Host: web.localhost' "http://127.0.0.1:$port/" || true)" = "$want" ]; do
        [ $SECONDS -lt $deadline ] || { echo "bench/rolling.sh: :$port never answered $want" >&2; return 1; }
        sleep 0.1
    done
}

# Run the load against port $1 while command "${@:3}" runs; summary to $2. Prints the
# command's wall time in seconds.
under_load() {
    local port=$1 summary=$2
    shift 2
    rm -f "$WORK/stop" "$WORK/mark"
    python3 bench/load.py --port "$port" --host web.localhost --rate "$RATE" \
        --max-requests 6000 --max-seconds 60 --stop-file "$WORK/stop" \
        --mark-file "$WORK/mark" --out "$summary" >/dev/null &
    LOAD_PID=$!
    sleep "$LEAD"
    local t0 t1 rc=0
    t0=$(now)
    "$@" >"$WORK/update.log" 2>&1 || rc=$?
    t1=$(now)
    touch "$WORK/mark"
    sleep "$TAIL"
    touch "$WORK/stop"
    wait "$LOAD_PID"
    LOAD_PID=
    if [ "$rc" != 0 ]; then
        cat "$WORK/update.log" >&2
        echo "bench/rolling.sh: update command failed ($rc)" >&2
        exit 1
    fi
    echo "$t1 - $t0" | bc -l
}

row() { # tool proxy replicas summary seconds
    python3 - "$@" <<'PY'
import json, sys
tool, proxy, replicas, path, seconds = sys.argv[1:6]
r = json.load(open(path))
print(f"| {proxy} | {replicas} | {tool} | {r['requests']} | {r['failed']} | {r['max_ms']:.0f} ms | "
      f"{r['p99_ms']:.0f} ms | {float(seconds):.1f} s | {r['stale_after_mark']} |")
PY
}

TABLE=$WORK/table.md
{
    echo "| proxy | replicas | tool | requests | failed | slowest | p99 | update took | old answers after |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$TABLE"

for proxy in $PROXIES; do
    for replicas in $REPLICAS_LIST; do
        SPORT=$(free_port)
        CPORT=$(free_port)
        cat >"$SDIR/stack.env" <<EOF
STACK_PROJECT=$SP
STACK_TLS=off
STACK_PROXY=$proxy
STACK_PROXY_IMAGE=stack-test/$proxy:latest
STACK_HTTP_PORT=$SPORT
STACK_HTTPS_PORT=$(free_port)
STACK_SERVICES=web
SERVICE_WEB_IMAGE=stack-test/busybox:latest
SERVICE_WEB_COMMAND=sh -c 'echo v\$\$VERSION > /tmp/index.html; exec httpd -f -p 8080 -h /tmp'
SERVICE_WEB_ENV_VERSION=1
SERVICE_WEB_PORT=8080
SERVICE_WEB_HEALTH=/
SERVICE_WEB_HEALTH_INTERVAL=1s
SERVICE_WEB_REPLICAS=$replicas
SERVICE_WEB_ROUTE=web.localhost
EOF
        # The bundles compose runs: v1 and v2, rendered by stack, renamed.
        for v in 1 2; do
            stack build --set "SERVICE_WEB_ENV_VERSION=$v" --out "$WORK/bundle$v" >/dev/null 2>&1
            grep -v '^name:' "$WORK/bundle$v/docker-compose.yml" |
                sed -e "s/\b$SP/$CP/g" -e "s/\b$SPORT:80\b/$CPORT:80/" >"$WORK/compose-v$v.yml"
        done
        rm -rf "$CDIR"
        cp -r "$WORK/bundle1" "$CDIR"
        cp "$WORK/compose-v1.yml" "$CDIR/docker-compose.yml"

        stack down --volumes >/dev/null 2>&1 || true
        compose down -v -t 1 >/dev/null 2>&1 || true
        stack start --set SERVICE_WEB_ENV_VERSION=1 >/dev/null 2>"$WORK/start.err" ||
            { cat "$WORK/start.err" >&2; exit 1; }
        compose up -d >/dev/null 2>&1
        wait_answer "$SPORT" v1
        wait_answer "$CPORT" v1

        tag="$proxy-r$replicas"
        echo "== $tag: stack start under load" >&2
        s_secs=$(under_load "$SPORT" "$RAW/$tag-stack.json" stack start --set SERVICE_WEB_ENV_VERSION=2)
        cp "$WORK/compose-v2.yml" "$CDIR/docker-compose.yml"
        echo "== $tag: docker-compose up -d under load" >&2
        c_secs=$(under_load "$CPORT" "$RAW/$tag-compose.json" compose up -d)

        row stack "$proxy" "$replicas" "$RAW/$tag-stack.json" "$s_secs" >>"$TABLE"
        row "docker-compose" "$proxy" "$replicas" "$RAW/$tag-compose.json" "$c_secs" >>"$TABLE"
        tail -2 "$TABLE" >&2

        stack down --volumes >/dev/null 2>&1 || true
        compose down -v -t 1 >/dev/null 2>&1 || true
    done
done

cp "$TABLE" "$OUT"
cat "$OUT"
