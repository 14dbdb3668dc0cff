#!/usr/bin/env bash
# The memory the MONITORING bundle adds on the VM (issue #9 item 8): a project with
# Postgres, Redis and one app service is started twice, without and with
# MONITORING_ENABLED, on the Debian-built images of scripts/build-test-images.sh; after
# WAIT seconds (Prometheus scraping every 15 s, its TSDB filling), the RSS of every
# container (the VmRSS of the processes in its cgroup; `docker stats` and the memory
# cgroup's rss read 0 on this machine) is listed per service and summed.
# Grafana, Loki, promtail and cAdvisor have no Debian package and are not in the sum;
# docker-proxy (haproxy, stack-test/docker-proxy) is, since this change (not re-measured).
# Usage: bash bench/monitoring.sh [WAIT_SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
wait_s="${1:-120}"
scripts/ensure-docker.sh >/dev/null
scripts/build-test-images.sh >/dev/null 2>&1
cargo build --release -q
STACK="${CARGO_TARGET_DIR:-$(pwd)/target}/release/stack"

work=$(mktemp -d)
name=benchmon
cleanup() {
    "$STACK" -C "$work" down -q >/dev/null 2>&1 || true
    docker ps -aq --filter "label=com.docker.compose.project=$name" | xargs -r docker rm -f >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/stack.env" <<CFG
STACK_PROJECT=$name
STACK_TLS=off
STACK_PROXY=none
STACK_SERVICES=web
SERVICE_WEB_IMAGE=stack-test/busybox:latest
SERVICE_WEB_COMMAND=httpd -f -p 8080 -h /var/www
SERVICE_WEB_PORT=8080
POSTGRES_ENABLED=true
SERVICE_POSTGRES_IMAGE=stack-test/postgres:15
REDIS_ENABLED=true
SERVICE_REDIS_IMAGE=stack-test/redis:7
CFG
"$STACK" -C "$work" secrets generate dev -q >/dev/null 2>&1 || true

measure() { # per service and in total: the VmRSS of the container's processes, in MiB
    sleep "$wait_s"
    docker ps --no-trunc --filter "label=com.docker.compose.project=$name" --format '{{.ID}} {{.Names}}' |
        python3 -c '
import sys
rows = []
for line in sys.stdin:
    cid, cname = line.split()
    kib = 0
    with open(f"/sys/fs/cgroup/pids/docker/{cid}/cgroup.procs") as procs:
        for pid in procs.read().split():
            try:
                with open(f"/proc/{pid}/status") as status:
                    kib += next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
    service = cname.removeprefix("'"$name"'-").rsplit("-", 1)[0]
    rows.append((service, kib / 1024))
for service, mib in sorted(rows):
    print(f"  {service:<20} {mib:8.1f} MiB")
label = "total"
print(f"  {label:<20} {sum(m for _, m in rows):8.1f} MiB")
'
}
echo "== without MONITORING (after ${wait_s} s)"
"$STACK" -C "$work" start -q
measure
cat >> "$work/stack.env" <<CFG
MONITORING_ENABLED=true
SERVICE_PROMETHEUS_IMAGE=stack-test/prometheus:latest
SERVICE_ALERTMANAGER_IMAGE=stack-test/alertmanager:latest
SERVICE_NODE_EXPORTER_IMAGE=stack-test/node-exporter:latest
SERVICE_POSTGRES_EXPORTER_IMAGE=stack-test/postgres-exporter:latest
SERVICE_REDIS_EXPORTER_IMAGE=stack-test/redis-exporter:latest
SERVICE_DOCKER_PROXY_IMAGE=stack-test/docker-proxy:latest
SERVICE_GRAFANA_ENVIRONMENTS=prod
SERVICE_LOKI_ENVIRONMENTS=prod
SERVICE_PROMTAIL_ENVIRONMENTS=prod
SERVICE_CADVISOR_ENVIRONMENTS=prod
CFG
echo "== with MONITORING (after ${wait_s} s)"
"$STACK" -C "$work" start -q
measure
