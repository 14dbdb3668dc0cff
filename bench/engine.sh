#!/usr/bin/env bash
# Benchmark for issue #3: `stack start` against Debian's docker-compose (v1) on the same
# 10-service project, side by side in one run. Run from the repository root:
#   bash bench/engine.sh
#
# Project: 10 busybox httpd services (stack-test/busybox:latest), each with an HTTP health
# check every 1 s, no proxy, no dependencies. stack runs it as project `benchstack`; compose
# runs a copy of the bundle stack rendered (top-level `name:` removed, v1 rejects it, and
# `benchstack` renamed to `benchcompose` so the two never share a network) as `benchcompose`.
#
# Measures
#   1. cold start to all-healthy, RUNS_COLD runs (default 5), each after a `down`:
#        stack    `stack start` (it waits for readiness itself)
#        stack+   the same run, until `docker inspect` also reports every container healthy
#                 (stack's own readiness is an HTTP probe that can answer before Docker's
#                 health check has run, so this column compares like with like)
#        compose  `docker-compose up -d`, then polling `docker inspect` until all are healthy
#   2. no-op start (everything up, nothing changed), hyperfine --warmup 3 --runs 20:
#        `stack start` vs `docker-compose up -d`
#   3. peak RSS of `stack start` during each cold start (/usr/bin/time, max over the runs)
#   4. the floor (issue #12): N parallel `docker run -d`, each polled by `docker exec` of the
#      same check until it passes once, in each cold run
#
# CHECK=http (default): `SERVICE_<N>_HEALTH=/health` (stack probes HTTP itself);
# CHECK=cmd: `SERVICE_<N>_HEALTH_CMD=wget -q -O /dev/null http://127.0.0.1:8080/health`
# (stack runs the command itself with `exec` right after the start).
#
# Writes the markdown table to $OUT (default bench/results/engine.md) and prints it.
# Needs: docker (engine up), docker-compose, hyperfine, /usr/bin/time, the test images.
# CARGO_TARGET_DIR is honoured (default target/). STACK_BIN=path uses a binary built beforehand.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${SERVICES:-10}
RUNS_COLD=${RUNS_COLD:-5}
CHECK=${CHECK:-http}
PROBE="wget -q -O /dev/null http://127.0.0.1:8080/health"
OUT=${OUT:-bench/results/engine.md}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
IMAGE=stack-test/busybox:latest

for cmd in docker docker-compose hyperfine python3; do
    command -v "$cmd" >/dev/null || { echo "bench/engine.sh: \`$cmd\` not found" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench/engine.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 2; }
docker info >/dev/null 2>&1 || scripts/ensure-docker.sh
docker image inspect "$IMAGE" >/dev/null 2>&1 || scripts/build-test-images.sh

if [ -n "${STACK_BIN:-}" ]; then
    STACK=$STACK_BIN # a binary built beforehand
else
    cargo build --release --quiet
    STACK="$(cd "$TARGET_DIR/release" && pwd)/stack"
fi
export NO_COLOR=1 CI=true
unset STACK_ENV

WORK=$(mktemp -d)
SP=benchstack
CP=benchcompose
SDIR=$WORK/stack
CDIR=$WORK/compose
mkdir -p "$SDIR" "$CDIR"

stack() { "$STACK" -C "$SDIR" "$@"; }
compose() { docker-compose -p "$CP" -f "$CDIR/docker-compose.yml" "$@"; }
cleanup() {
    stack down --volumes >/dev/null 2>&1 || true
    compose down -v -t 1 >/dev/null 2>&1 || true
    docker network rm benchfloor >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

{
    echo "STACK_PROJECT=$SP"
    echo "STACK_PROXY=none"
    echo "STACK_TLS=off"
    names=()
    for i in $(seq 1 "$N"); do names+=("s$i"); done
    echo "STACK_SERVICES=$(IFS=,; echo "${names[*]}")"
    for i in $(seq 1 "$N"); do
        K=S$i
        echo "SERVICE_${K}_IMAGE=$IMAGE"
        echo "SERVICE_${K}_COMMAND=httpd -f -p 8080 -h /var/www"
        echo "SERVICE_${K}_PORT=8080"
        if [ "$CHECK" = cmd ]; then
            echo "SERVICE_${K}_HEALTH_CMD=$PROBE"
        else
            echo "SERVICE_${K}_HEALTH=/health"
        fi
        echo "SERVICE_${K}_HEALTH_INTERVAL=1s"
    done
} >"$SDIR/stack.env"

stack build >/dev/null
grep -v '^name:' "$SDIR/.stack/dev/docker-compose.yml" | sed "s/\b$SP\b/$CP/g" >"$CDIR/docker-compose.yml"
compose config -q

now() { date +%s.%N; }
# Wait until every container of compose project $1 reports healthy; 120 s cap.
wait_healthy() {
    local project=$1 deadline=$((SECONDS + 120)) ids states
    while :; do
        ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
        if [ "$(echo "$ids" | grep -c .)" -eq "$N" ]; then
            # shellcheck disable=SC2086
            states=$(docker inspect --format '{{.State.Health.Status}}' $ids | sort -u)
            [ "$states" = healthy ] && return 0
        fi
        [ $SECONDS -lt $deadline ] || { echo "bench/engine.sh: $project not healthy after 120 s" >&2; return 1; }
        sleep 0.05
    done
}

stack down --volumes >/dev/null 2>&1 || true
compose down -v -t 1 >/dev/null 2>&1 || true

# The floor: N containers started in parallel, each polled with `docker exec` of the
# check (from 50 ms) until it passes once. Prints the seconds it took.
floor() {
    local t0 t1 i
    t0=$(now)
    for i in $(seq 1 "$N"); do
        (
            docker run -d --network benchfloor --name "benchfloor-$i" "$IMAGE" httpd -f -p 8080 -h /var/www >/dev/null
            until docker exec "benchfloor-$i" sh -c "$PROBE" >/dev/null 2>&1; do sleep 0.05; done
        ) &
    done
    wait
    t1=$(now)
    for i in $(seq 1 "$N"); do docker rm -f "benchfloor-$i" >/dev/null 2>&1 & done
    wait
    echo "$t1 - $t0" | bc -l
}
for i in $(seq 1 "$N"); do docker rm -f "benchfloor-$i" >/dev/null 2>&1 || true; done
docker network create benchfloor >/dev/null 2>&1 || true

declare -a T_STACK T_STACK_DOCKER T_COMPOSE T_FLOOR RSS
for run in $(seq 1 "$RUNS_COLD"); do
    t0=$(now)
    /usr/bin/time -f '%M' -o "$WORK/rss" "$STACK" -C "$SDIR" start >/dev/null 2>"$WORK/stack.err" \
        || { cat "$WORK/stack.err" >&2; exit 1; }
    t1=$(now)
    wait_healthy "$SP"
    t2=$(now)
    T_STACK+=("$(echo "$t1 - $t0" | bc -l)")
    T_STACK_DOCKER+=("$(echo "$t2 - $t0" | bc -l)")
    RSS+=("$(tail -1 "$WORK/rss")")

    t0=$(now)
    compose up -d >/dev/null 2>&1
    wait_healthy "$CP"
    t1=$(now)
    T_COMPOSE+=("$(echo "$t1 - $t0" | bc -l)")
    T_FLOOR+=("$(floor)")
    echo "cold run $run: stack ${T_STACK[-1]} s (docker-healthy ${T_STACK_DOCKER[-1]} s, rss ${RSS[-1]} KB), compose ${T_COMPOSE[-1]} s, floor ${T_FLOOR[-1]} s" >&2

    if [ "$run" -lt "$RUNS_COLD" ]; then
        stack down >/dev/null 2>&1 &
        compose down -t 1 >/dev/null 2>&1 &
        wait
    fi
done

stats() { printf '%s\n' "$@" | awk '{s+=$1; if(NR==1||$1<mn)mn=$1; if($1>mx)mx=$1} END{printf "%.2f %.2f %.2f", s/NR, mn, mx}'; }
read -r S_MEAN S_MIN S_MAX <<<"$(stats "${T_STACK[@]}")"
read -r SD_MEAN SD_MIN SD_MAX <<<"$(stats "${T_STACK_DOCKER[@]}")"
read -r C_MEAN C_MIN C_MAX <<<"$(stats "${T_COMPOSE[@]}")"
read -r F_MEAN F_MIN F_MAX <<<"$(stats "${T_FLOOR[@]}")"
RSS_MAX_KB=$(printf '%s\n' "${RSS[@]}" | sort -n | tail -1)

# No-op: both projects are up and healthy.
hyperfine --warmup 3 --runs 20 --style basic --export-json "$WORK/noop.json" \
    -n "stack start" "$STACK -C $SDIR start" \
    -n "docker-compose up -d" "docker-compose -p $CP -f $CDIR/docker-compose.yml up -d" >&2
read -r NS_MEAN NS_MIN NS_MAX NC_MEAN NC_MIN NC_MAX <<<"$(python3 - "$WORK/noop.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(" ".join(f"{x*1000:.0f}" for res in r for x in (res["mean"], res["min"], res["max"])))
EOF
)"

ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
COLD_RATIO=$(ratio "$S_MEAN" "$C_MEAN")
COLDD_RATIO=$(ratio "$SD_MEAN" "$C_MEAN")
NOOP_RATIO=$(ratio "$NS_MEAN" "$NC_MEAN")
FLOOR_RATIO=$(ratio "$S_MEAN" "$F_MEAN")
RSS_MB=$(echo "scale=1; $RSS_MAX_KB / 1024" | bc -l)
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo met; else echo MISSED; fi; }

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
| measure ($N services, CHECK=$CHECK) | stack | docker-compose $(docker-compose version --short 2>/dev/null) | ratio | goal | result |
|---|---|---|---|---|---|
| cold start to ready against the floor (parallel \`docker run\` + \`docker exec\` polling) | $S_MEAN / $S_MIN / $S_MAX s | floor $F_MEAN / $F_MIN / $F_MAX s | $FLOOR_RATIO× the floor | ≤ 1.2× | $(verdict "$FLOOR_RATIO <= 1.2") |
| cold start to ready, \`stack start\` returns (mean / min / max of $RUNS_COLD) | $S_MEAN / $S_MIN / $S_MAX s | $C_MEAN / $C_MIN / $C_MAX s | $COLD_RATIO× | ≤ 0.7× | $(verdict "$COLD_RATIO <= 0.7") |
| cold start until Docker reports all healthy (same runs) | $SD_MEAN / $SD_MIN / $SD_MAX s | $C_MEAN / $C_MIN / $C_MAX s | $COLDD_RATIO× | (like for like) | $(verdict "$COLDD_RATIO <= 0.7") |
| no-op start (hyperfine, 20 runs, mean / min / max) | $NS_MEAN / $NS_MIN / $NS_MAX ms | $NC_MEAN / $NC_MIN / $NC_MAX ms | $NOOP_RATIO× | < 300 ms and ≤ 0.3× | $(verdict "$NS_MEAN < 300 && $NOOP_RATIO <= 0.3") |
| peak RSS of \`stack start\`, cold (max of $RUNS_COLD) | $RSS_MB MB | – | – | < 40 MB | $(verdict "$RSS_MB < 40") |
EOF
cat "$OUT"
