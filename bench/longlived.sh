#!/usr/bin/env bash
# Benchmark for issue 22, item 5: server-sent-event streams cut by repeated deploys,
# `stack start` against Debian's docker-compose (v1) `up -d` on the same rendered bundle,
# side by side in one run, through Caddy and through nginx. Run from the repository root:
#   bash bench/longlived.sh         # PROXIES="caddy nginx" ROUNDS=3 STREAMS=10 DRAIN=5s
#
# Project: `live`, the event server of tests/data/longlived (busybox httpd CGI, one event
# a second; on SIGTERM it stops accepting and keeps its open streams), routed at
# live.localhost, rolling with SERVICE_LIVE_DRAIN=$DRAIN; `other`, a busybox httpd routed
# at other.localhost. compose runs a copy of the bundle stack rendered (renamed project
# and port, `name:` removed; v1 rejects it) from the bundle directory.
#
# For each proxy, stack then compose (never both at once): bench/sse.py holds STREAMS
# streams to `live` through the proxy (it reopens a cut one, and counts a failed reopen; a probe opens a new stream every 0.5 s, as a new client),
# then ROUNDS times: a change of `other` (phase "other"), then a change of `live` (phase
# "live"), each applied by `stack start` / `docker-compose up -d`; for stack, also
# `stack maintenance on --retry-after <60+round>` + `off` (phase "reload": the new
# Retry-After makes `on` reload the proxy every round; compose has no equivalent). Columns: streams cut per phase, failed reopens, new clients (probes) that got no event
# during the deploys of `live`, and the mean wall time of
# a deploy of `live` (for stack it includes the drain: the command waits until the old
# container has stopped). Bounded: each holder stops after 600 s.
#
# Writes the table to $OUT (default bench/results/longlived.md) and prints it. Needs
# docker, docker-compose, python3, the test images. STACK_BIN=path skips the build.
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
for image in stack-test/busybox:latest stack-test/caddy:latest stack-test/nginx:latest; do
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
cp tests/data/longlived/run.sh tests/data/longlived/events "$SDIR/app/"
HOLDER=

stack() { "$STACK" -C "$SDIR" "$@"; }
compose() { (cd "$CDIR" && docker-compose -p "$CP" "$@"); }
cleanup() {
    [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null || true
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

write_project() { # port https live-version other-version
    cat >"$SDIR/stack.env" <<EOF
STACK_PROJECT=$SP
STACK_TLS=off
STACK_PROXY=$proxy
STACK_PROXY_IMAGE=stack-test/$proxy:latest
STACK_HTTP_PORT=$1
STACK_HTTPS_PORT=$2
STACK_SERVICES=live,other
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
SERVICE_OTHER_ROUTE=other.localhost
EOF
}

# Start the holder on port $1, summary to $2; wait until every stream has had events.
hold() {
    rm -f "$WORK/stop"
    echo idle >"$WORK/phase"
    python3 bench/sse.py --port "$1" --host live.localhost --streams "$STREAMS" \
        --phase-file "$WORK/phase" --stop-file "$WORK/stop" --max-seconds 600 --out "$2" &
    HOLDER=$!
    sleep 3
}
release() { touch "$WORK/stop"; wait "$HOLDER"; HOLDER=; }

row() { # proxy tool summary live-seconds
    python3 - "$@" <<'PY'
import json, sys
proxy, tool, path, secs = sys.argv[1:5]
r = json.load(open(path))
c, f, p, pf = r["cuts"], r["failed_reconnects"], r["probes"], r["probes_failed"]
reload = str(c.get("reload", 0)) if tool == "stack" else "n/a"
probes = f"{pf.get('live', 0)} of {p.get('live', 0)}"
print(f"| {proxy} | {tool} | {r['streams']} | {c.get('other', 0)} | {reload} | "
      f"{c.get('live', 0)} | {sum(f.values())} | {probes} | {float(secs):.1f} s |")
PY
}

TABLE=$WORK/table.md
{
    echo "| proxy | tool | streams | cut by a deploy of \`other\` | cut by proxy reloads | cut by a deploy of \`live\` | failed reopens | new clients failed during a deploy of \`live\` | deploy of \`live\` took (mean) |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$TABLE"

for proxy in $PROXIES; do
    SPORT=$(free_port); HPORT=$(free_port); CPORT=$(free_port)
    # compose's bundles, rendered by stack for every version used.
    for round in $(seq 0 "$ROUNDS"); do
        for other in "$round" "$((round + 1))"; do
            write_project "$SPORT" "$HPORT" "$round" "$other"
            stack build --out "$WORK/b-$round-$other" >/dev/null 2>&1
            grep -v '^name:' "$WORK/b-$round-$other/docker-compose.yml" |
                sed -e "s/\b$SP/$CP/g" -e "s/\b$SPORT:80\b/$CPORT:80/" \
                    -e "s#- $SDIR/app:#- ./app:#" >"$WORK/compose-$round-$other.yml"
        done
    done
    rm -rf "$CDIR"; cp -r "$WORK/b-0-0" "$CDIR"; cp -r "$SDIR/app" "$CDIR/app"
    cp "$WORK/compose-0-0.yml" "$CDIR/docker-compose.yml"

    # stack
    write_project "$SPORT" "$HPORT" 0 0
    stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    wait_up "$SPORT"
    hold "$SPORT" "$WORK/bench/$proxy-stack.json"
    total=0
    for round in $(seq 1 "$ROUNDS"); do
        echo other >"$WORK/phase"
        write_project "$SPORT" "$HPORT" "$((round - 1))" "$round"
        stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        echo reload >"$WORK/phase"
        stack maintenance on --retry-after $((60 + round)) >/dev/null 2>&1; stack maintenance off >/dev/null 2>&1
        echo live >"$WORK/phase"
        write_project "$SPORT" "$HPORT" "$round" "$round"
        t0=$(now)
        stack start >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        total=$(echo "$total + $(now) - $t0" | bc -l)
        sleep 2 # let the cut streams reopen before the next phase
        echo idle >"$WORK/phase"
    done
    release
    row "$proxy" stack "$WORK/bench/$proxy-stack.json" "$(echo "$total / $ROUNDS" | bc -l)" >>"$TABLE"
    stack down --volumes >/dev/null 2>&1

    # docker-compose
    compose up -d >/dev/null 2>&1
    wait_up "$CPORT"
    hold "$CPORT" "$WORK/bench/$proxy-compose.json"
    total=0
    for round in $(seq 1 "$ROUNDS"); do
        echo other >"$WORK/phase"
        cp "$WORK/compose-$((round - 1))-$round.yml" "$CDIR/docker-compose.yml"
        compose up -d >/dev/null 2>&1
        echo live >"$WORK/phase"
        cp "$WORK/compose-$round-$round.yml" "$CDIR/docker-compose.yml"
        t0=$(now)
        compose up -d >/dev/null 2>&1
        total=$(echo "$total + $(now) - $t0" | bc -l)
        sleep 2
        echo idle >"$WORK/phase"
    done
    release
    row "$proxy" docker-compose "$WORK/bench/$proxy-compose.json" "$(echo "$total / $ROUNDS" | bc -l)" >>"$TABLE"
    compose down -v -t 1 >/dev/null 2>&1
    tail -2 "$TABLE" >&2
done

cp "$TABLE" "$OUT"
cat "$OUT"
