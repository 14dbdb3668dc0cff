#!/usr/bin/env bash
# Minimal reproduction, without stack, of the connection reset seen during a preview's
# Caddy reload (issue 20, item 5 / issue 23): Caddy 2.6 reloads by binding a second
# SO_REUSEPORT socket on :80 and closing the old one, and the kernel resets the
# connections that were queued in the old socket and not accepted yet. With
# `net.ipv4.tcp_migrate_req=1` (Linux 5.14) the kernel hands them to the new socket.
# Run from the repository root: `bash bench/caddy-reload-reset.sh`.
#
# On the local engine: one busybox httpd, one Caddy (stack-test/caddy, Debian's 2.6) in
# front of it, a request loop of new HTTP/1.0 connections straight to Caddy's address
# (no published port, no NAT, no docker-proxy), and RELOADS `caddy reload`s that add and
# remove one site in an imported file, as a preview's route does. Twice: without the
# sysctl, then with it. Prints the requests and the resets of each run.
#
# Environment:
#   RELOADS   reloads per run (default 150)
#   THREADS   parallel request loops (default 4)
set -euo pipefail

cd "$(dirname "$0")/.."
RELOADS=${RELOADS:-150}
THREADS=${THREADS:-4}
CADDY=${CADDY:-stack-test/caddy:latest}
BUSYBOX=${BUSYBOX:-stack-test/busybox:latest}
NAME=caddy-reset-$$
DIR=$(mktemp -d)
cleanup() {
  docker rm -f "$NAME-caddy" "$NAME-web" >/dev/null 2>&1 || true
  docker network rm "$NAME" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/previews"
cat > "$DIR/Caddyfile" <<'CADDY'
{
	auto_https off
}

http://staging.test {
	reverse_proxy web:8080
}

import /etc/caddy/previews/*.caddy
CADDY
docker network create "$NAME" >/dev/null
docker run -d --name "$NAME-web" --network "$NAME" --network-alias web "$BUSYBOX" \
  sh -c 'mkdir -p /www; echo staging > /www/index.html; httpd -f -p 8080 -h /www' >/dev/null

run() {
  local label=$1; shift
  docker rm -f "$NAME-caddy" >/dev/null 2>&1 || true
  rm -f "$DIR/previews/"*
  docker run -d --name "$NAME-caddy" --network "$NAME" "$@" \
    -v "$DIR/Caddyfile:/etc/caddy/Caddyfile:ro" -v "$DIR/previews:/etc/caddy/previews:ro" \
    "$CADDY" >/dev/null
  local ip
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$NAME-caddy")
  # Caddy answers before the loop starts (a readiness wait, not a measurement).
  until python3 - "$ip" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=1)
s.sendall(b"GET / HTTP/1.0\r\nHost: staging.test\r\n\r\n")
assert b" 200 " in s.recv(100)
PY
  do :; done
  python3 - "$ip" "$THREADS" "$DIR/stop" > "$DIR/$label.out" <<'PY' &
import os, socket, sys, threading
ip, threads, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
counts = {"requests": 0, "reset": 0, "other": 0}
lock = threading.Lock()
def loop():
    while not os.path.exists(stop):
        outcome = "requests"
        try:
            s = socket.create_connection((ip, 80), timeout=5)
            s.sendall(b"GET / HTTP/1.0\r\nHost: staging.test\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            s.close()
            if b" 200 " not in data.split(b"\r\n", 1)[0]:
                outcome = "other"
        except ConnectionResetError:
            outcome = "reset"
        except OSError:
            outcome = "other"
        with lock:
            counts["requests"] += 1
            if outcome != "requests":
                counts[outcome] += 1
workers = [threading.Thread(target=loop) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(f"{counts['requests']} requests, {counts['reset']} reset by peer, {counts['other']} other failures")
PY
  local loop=$!
  for i in $(seq 1 "$RELOADS"); do
    if [ $((i % 2)) = 1 ]; then
      printf 'http://pr-1.preview.test {\n\treverse_proxy web:8080\n}\n' > "$DIR/previews/pr-1.caddy"
    else
      rm -f "$DIR/previews/pr-1.caddy"
    fi
    docker exec "$NAME-caddy" caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1
  done
  touch "$DIR/stop"; wait "$loop"; rm -f "$DIR/stop"
  echo "$label ($RELOADS reloads, caddy $(docker exec "$NAME-caddy" caddy version | cut -d' ' -f1), kernel $(uname -r)): $(cat "$DIR/$label.out")"
}

run "without the sysctl"
run "with net.ipv4.tcp_migrate_req=1" --sysctl net.ipv4.tcp_migrate_req=1
