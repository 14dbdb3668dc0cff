#!/usr/bin/env bash
# Make sure a Docker engine answers on /var/run/docker.sock.
# If `docker info` fails, start dockerd in the background (log: /tmp/dockerd.log)
# and wait up to DOCKER_WAIT_SECONDS (default 60) for it to answer.
# Safe to call repeatedly; used by .ci/run, tests and benchmarks.
set -euo pipefail

wait_seconds="${DOCKER_WAIT_SECONDS:-60}"
socket=/var/run/docker.sock
log=/tmp/dockerd.log

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "ensure-docker: dockerd is not installed (apt-get install docker.io)" >&2
    exit 3
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    # A stale socket or pid file from a killed daemon stops dockerd from starting.
    if [ -S "$socket" ]; then rm -f "$socket"; fi
    rm -f /var/run/docker.pid
    echo "ensure-docker: starting dockerd (log: $log)" >&2
    # Project networks as /24s from a /16: 256 of them instead of Docker's ~30 default
    # ranges, which parallel tests (three networks per project) would run out of.
    nohup dockerd --default-address-pool base=10.96.0.0/16,size=24 >"$log" 2>&1 </dev/null &
fi

deadline=$((SECONDS + wait_seconds))
while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -S "$socket" ] && docker info >/dev/null 2>&1; then
        echo "ensure-docker: engine is up (API $(docker version --format '{{.Server.APIVersion}}'))" >&2
        exit 0
    fi
    sleep 1
done

echo "ensure-docker: docker engine did not answer within ${wait_seconds}s; last lines of $log:" >&2
tail -n 30 "$log" >&2 || true
exit 3
