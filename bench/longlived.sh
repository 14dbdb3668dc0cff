#!/usr/bin/env bash
# Benchmark for issue 22, item 5: server-sent-event streams and WebSocket connections cut
# by repeated deploys and proxy configuration changes, `stack start` against Debian's
# docker-compose (v1) `up -d` on the same rendered bundle, side by side in one run,
# through Caddy and through nginx. Run from the repository root:
#   bash bench/longlived.sh         # PROXIES="caddy nginx" ROUNDS=3 STREAMS=10 DRAIN=5s
#
# Project: `live`, the event server of tests/data/longlived (busybox httpd CGI, one event
# a second), routed at live.localhost; `chat`, the WebSocket echo server of
# tests/data/longlived/ws.py (stack-test/python), routed at chat.localhost; both rolling
# with DRAIN=$DRAIN and, on SIGTERM, they stop accepting and keep their open connections;
# `other`, a busybox httpd routed at other.localhost. compose runs a copy of the bundle
# stack rendered (renamed project and port, `name:` removed; v1 rejects it) from the
# bundle directory.
#
# For each proxy, stack then compose (never both at once): bench/sse.py holds STREAMS
# streams to `live` and bench/ws.py STREAMS WebSocket connections to `chat` through the
# proxy (each reopens a cut one and counts a failed reopen; a probe opens a new one every
# 0.5 s, as a new client), then ROUNDS times: a change of `other` (phase "other"); for
# stack, `stack maintenance on --retry-after <60+round>` + `off` (phase "reload": the new
# Retry-After makes `on` reload the proxy every round; compose has no equivalent); a
# change of the proxy's configuration only, one more host routed to `other` every round
# (phase "config": stack reloads the proxy in place; compose gets the new files and
# `up -d`, which recreates `other` (its labels changed) but not the proxy, so `restart
# proxy` makes it serve the new host); then a change of `live` and `chat` (phase "live"),
# each applied by `stack start` / `docker-compose up -d`. Columns: connections cut per
# phase, failed reopens, new clients (probes) that failed during the deploys of `live`
# and `chat`, and the mean wall time of that deploy (for stack it includes the drain:
# the command waits until the old containers have stopped). Bounded: each holder stops
# after 900 s.
#
# Writes the table to $OUT (default bench/results/longlived.md) and prints it. Needs
# docker, docker-compose, python3, the test images. STACK_BIN=path skips the build.
# PROXY_IMAGE overrides the proxy's image (e.g. stack-test/caddy:2.11.7) and EXTRA adds a
# line to the project file (e.g. STACK_CADDY_STREAM_CLOSE_DELAY=10m).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/longlived.md}
PROXIES=${PROXIES:-caddy nginx}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-10}
DRAIN=${DRAIN:-5s}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

for cmd in docker docker-compose python3 curl bc; do
    command -v "$cmd" >/dev/null || { echo "bench/longlived.sh: \`$cmd\` not found" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
for image in stack-test/busybox:latest stack-test/caddy:latest stack-test/nginx:latest stack-test/python:latest; do
    docker image inspect "$image" >/dev/null 2>&1 || scripts/build-test-images.sh
done
if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN
else
    cargo build --release --quiet
    STACK="$(cd "$TARGET_DIR/release" && pwd)/stack"
fi
export NO_COLOR=1 CI=true
unset STACK_ENV

WORK=$(mktemp -d)
SP=longstack
CP=longcompose
SDIR=$WORK/stack
CDIR=$WORK/compose
mkdir -p "$SDIR/app" "$WORK/bench"
cp tests/data/longlived/run.sh tests/data/longlived/events tests/data/longlived/ws.py "$SDIR/app/"
HOLDERS=

stack() { "$STACK" -C "$SDIR" "$@"; }
compose() { (cd "$CDIR" && docker-compose -p "$CP" "$@"); }
cleanup() {
    # shellcheck disable=SC2086 # a list of PIDs
    [ -n "$HOLDERS" ] && kill $HOLDERS 2>/dev/null || true
    stack down --volumes >/dev/null 2>&1 || true
    [ -d "$CDIR" ] && compose down -v -t 1 >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# Wait until 127.0.0.1:$1 answers 200 for other.localhost; 60 s cap.
wait_up() {
    local deadline=$((SECONDS + 60))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 -H 'Host: other.localhost' "http://127.0.0.1:$1/" || true)" = 200 ]; do
        [ $SECONDS -lt $deadline ] || { echo "bench/longlived.sh: :$1 never answered" >&2; return 1; }
        sleep 0.2
    done
}

# `other`'s routes after $1 configuration changes: other.localhost, then one more host.
routes() { if [ "$1" = 0 ]; then echo other.localhost; else echo "other.localhost,r$1.localhost"; fi; }

write_project() { # port https live-and-chat-version other-version routes-index
    cat >"$SDIR/stack.env" <<EOF
STACK_PROJECT=$SP
STACK_TLS=off
STACK_PROXY=$proxy
STACK_PROXY_IMAGE=${PROXY_IMAGE:-stack-test/$proxy:latest}
${EXTRA:-}
STACK_HTTP_PORT=$1
STACK_HTTPS_PORT=$2
STACK_SERVICES=live,other,chat
SERVICE_LIVE_IMAGE=stack-test/busybox:latest
SERVICE_LIVE_COMMAND=sh /app/run.sh
SERVICE_LIVE_VOLUMES=./app:/app:ro
SERVICE_LIVE_ENV_VERSION=$3
SERVICE_LIVE_PORT=8080
SERVICE_LIVE_HEALTH=/health
SERVICE_LIVE_HEALTH_INTERVAL=1s
SERVICE_LIVE_ROUTE=live.localhost
SERVICE_LIVE_DRAIN=$DRAIN
SERVICE_OTHER_IMAGE=stack-test/busybox:latest
SERVICE_OTHER_COMMAND=sh -c 'mkdir -p /tmp/www; echo v\$\$VERSION > /tmp/www/index.html; echo ok > /tmp/www/health; exec httpd -f -p 8080 -h /tmp/www'
SERVICE_OTHER_ENV_VERSION=$4
SERVICE_OTHER_PORT=8080
SERVICE_OTHER_HEALTH=/health
SERVICE_OTHER_HEALTH_INTERVAL=1s
SERVICE_OTHER_ROUTE=$(routes "$5")
SERVICE_CHAT_IMAGE=stack-test/python:latest
SERVICE_CHAT_COMMAND=python3 /app/ws.py
SERVICE_CHAT_VOLUMES=./app:/app:ro
SERVICE_CHAT_ENV_VERSION=$3
SERVICE_CHAT_PORT=8080
SERVICE_CHAT_HEALTH=/health
SERVICE_CHAT_HEALTH_INTERVAL=1s
SERVICE_CHAT_ROUTE=chat.localhost
SERVICE_CHAT_DRAIN=$DRAIN
EOF
}

# Start both holders on port $1, summaries to $2-sse.json and $2-ws.json; give every
# connection time to open.
hold() {
    rm -f "$WORK/stop"
    echo idle >"$WORK/phase"
    python3 bench/sse.py --port "$1" --host live.localhost --streams "$STREAMS" \
        --phase-file "$WORK/phase" --stop-file "$WORK/stop" --max-seconds 900 --out "$2-sse.json" &
    HOLDERS=$!
    python3 bench/ws.py --port "$1" --host chat.localhost --connections "$STREAMS" \
        --phase-file "$WORK/phase" --stop-file "$WORK/stop" --max-seconds 900 --out "$2-ws.json" &
    HOLDERS="$HOLDERS $!"
    sleep 3
}
# shellcheck disable=SC2086 # a list of PIDs
release() { touch "$WORK/stop"; wait $HOLDERS; HOLDERS=; }

row() { # proxy tool kind summary live-seconds
    python3 - "$@" <<'PY'
import json, sys
proxy, tool, kind, path, secs = sys.argv[1:6]
r = json.load(open(path))
c, f, p, pf = r["cuts"], r["failed_reconnects"], r["probes"], r["probes_failed"]
reload = str(c.get("reload", 0)) if tool == "stack" else "n/a"
probes = f"{pf.get('live', 0)} of {p.get('live', 0)}"
print(f"| {proxy} | {tool} | {kind} | {r['streams']} | {c.get('other', 0)} | {reload} | "
      f"{c.get('config', 0)} | {c.get('live', 0)} | {sum(f.values())} | {probes} | {float(secs):.1f} s |")
PY
}

TABLE=$WORK/table.md
{
    echo "| proxy | tool | connections | held | cut by a deploy of \`other\` | cut by \`maintenance\` reloads | cut by a proxy configuration change | cut by a deploy of their own service | failed reopens | new clients failed during that deploy | deploy of \`live\` + \`chat\` took (mean) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$TABLE"

for proxy in $PROXIES; do
    SPORT=$(free_port); HPORT=$(free_port); CPORT=$(free_port)
    # compose's bundles, rendered by stack for every version used: <live>-<other>-<routes>.
    versions="0-0-0"
    for round in $(seq 1 "$ROUNDS"); do
        versions="$versions $((round - 1))-$round-$((round - 1)) $((round - 1))-$round-$round $round-$round-$round"
    done
    for v in $versions; do
        IFS=- read -r l o k <<<"$v"
        write_project "$SPORT" "$HPORT" "$l" "$o" "$k"
        stack build --out "$WORK/b-$v" >/dev/null 2>&1
        grep -v '^name:' "$WORK/b-$v/docker-compose.yml" |
            sed -e "s/\b$SP/$CP/g" -e "s/\b$SPORT:80\b/$CPORT:80/" \
                -e "s#- $SDIR/app:#- ./app:#" >"$WORK/compose-$v.yml"
    done
    rm -rf "$CDIR"; cp -r "$WORK/b-0-0-0" "$CDIR"; cp -r "$SDIR/app" "$CDIR/app"
    cp "$WORK/compose-0-0-0.yml" "$CDIR/docker-compose.yml"
    # compose's proxy binds its configuration file; `cp` rewrites it in place.
    case $proxy in caddy) conf=Caddyfile ;; *) conf=nginx/nginx.conf ;; esac

    # stack
    write_project "$SPORT" "$HPORT" 0 0 0
    stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    wait_up "$SPORT"
    hold "$SPORT" "$WORK/bench/$proxy-stack"
    total=0
    for round in $(seq 1 "$ROUNDS"); do
        echo other >"$WORK/phase"
        write_project "$SPORT" "$HPORT" "$((round - 1))" "$round" "$((round - 1))"
        stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        sleep 2 # let the cut connections reopen before the next phase
        echo reload >"$WORK/phase"
        stack maintenance on --retry-after $((60 + round)) >/dev/null 2>&1; stack maintenance off >/dev/null 2>&1
        sleep 2
        echo config >"$WORK/phase"
        write_project "$SPORT" "$HPORT" "$((round - 1))" "$round" "$round"
        stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        sleep 2
        echo live >"$WORK/phase"
        write_project "$SPORT" "$HPORT" "$round" "$round" "$round"
        t0=$(now)
        stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        total=$(echo "$total + $(now) - $t0" | bc -l)
        sleep 2
        echo idle >"$WORK/phase"
    done
    release
    mean=$(echo "$total / $ROUNDS" | bc -l)
    row "$proxy" stack "event streams" "$WORK/bench/$proxy-stack-sse.json" "$mean" >>"$TABLE"
    row "$proxy" stack WebSocket "$WORK/bench/$proxy-stack-ws.json" "$mean" >>"$TABLE"
    stack down --volumes >/dev/null 2>&1

    # docker-compose
    compose up -d >/dev/null 2>&1
    wait_up "$CPORT"
    hold "$CPORT" "$WORK/bench/$proxy-compose"
    total=0
    for round in $(seq 1 "$ROUNDS"); do
        echo other >"$WORK/phase"
        cp "$WORK/compose-$((round - 1))-$round-$((round - 1)).yml" "$CDIR/docker-compose.yml"
        compose up -d >/dev/null 2>&1
        sleep 2
        echo config >"$WORK/phase"
        v="$((round - 1))-$round-$round"
        cp "$WORK/compose-$v.yml" "$CDIR/docker-compose.yml"
        cp "$WORK/b-$v/$conf" "$CDIR/$conf"
        compose up -d >/dev/null 2>&1
        compose restart proxy >/dev/null 2>&1
        sleep 2
        echo live >"$WORK/phase"
        cp "$WORK/compose-$round-$round-$round.yml" "$CDIR/docker-compose.yml"
        t0=$(now)
        compose up -d >/dev/null 2>&1
        total=$(echo "$total + $(now) - $t0" | bc -l)
        sleep 2
        echo idle >"$WORK/phase"
    done
    release
    mean=$(echo "$total / $ROUNDS" | bc -l)
    row "$proxy" docker-compose "event streams" "$WORK/bench/$proxy-compose-sse.json" "$mean" >>"$TABLE"
    row "$proxy" docker-compose WebSocket "$WORK/bench/$proxy-compose-ws.json" "$mean" >>"$TABLE"
    compose down -v -t 1 >/dev/null 2>&1
    tail -4 "$TABLE" >&2
done

cp "$TABLE" "$OUT"
cat "$OUT"
