#!/usr/bin/env python3
"""Sequential HTTP load for the rolling-update benchmark (issue #5). Standard library only.

    python3 bench/load.py --port 8080 --host web.localhost [--rate 100] [--max-requests 6000]
                          [--max-seconds 60] [--stop-file PATH] [--out summary.json]

Sends one GET at a time to 127.0.0.1:PORT (loopback only) with the given Host header, paced
at about RATE requests per second, until --stop-file exists, --max-seconds have passed or
--max-requests were sent, whichever comes first. Every request has its own 5 s timeout.

A request fails when it cannot connect, times out, or answers anything but 200. The body's
first line is taken as the version (the test service answers e.g. `v2`).

Prints (and writes to --out) a JSON summary: requests, failed, failures (first 20, with
time and reason), max/p50/p99 latency in ms, versions seen (count, first and last time,
seconds since start), `overlap_seconds` (how long old and new versions both answered) and,
with --mark-file (created when the update command returned), `stale_after_mark`: responses
after the mark that did not come from the newest version.
"""

import argparse
import http.client
import json
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--max-requests", type=int, default=6000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--stop-file")
    parser.add_argument("--ready-file", help="touched once the first request succeeded")
    parser.add_argument("--mark-file", help="once it exists, count responses not from the newest version")
    parser.add_argument("--out")
    args = parser.parse_args()

    interval = 1.0 / args.rate
    start = time.monotonic()
    deadline = start + min(args.max_seconds, 600.0)
    max_requests = min(args.max_requests, 100000)
    latencies = []
    failures = []
    failed = 0
    versions = {}  # version -> [count, first, last]
    order = []  # versions in order of first appearance
    slowest = (0.0, 0.0)  # (latency, at)
    sent = 0
    marked_at = None
    after_mark = {}  # version -> count of responses after the mark
    next_at = start
    while sent < max_requests:
        now = time.monotonic()
        if now >= deadline:
            break
        if args.stop_file and sent % 10 == 0 and os.path.exists(args.stop_file):
            break
        if args.mark_file and marked_at is None and os.path.exists(args.mark_file):
            marked_at = now - start
        if now < next_at:
            time.sleep(next_at - now)
        next_at = max(next_at + interval, time.monotonic() - interval)
        t0 = time.monotonic()
        sent += 1
        reason = None
        version = None
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
            conn.request("GET", args.path, headers={"Host": args.host, "Connection": "close"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            conn.close()
            if response.status != 200:
                reason = f"HTTP {response.status}: {body.strip()[:80]}"
            else:
                version = body.strip().splitlines()[0] if body.strip() else "(empty)"
        except Exception as error:  # noqa: BLE001 - every failure counts
            reason = f"{type(error).__name__}: {error}"
        t1 = time.monotonic()
        latency = t1 - t0
        latencies.append(latency)
        at = t0 - start
        if latency > slowest[0]:
            slowest = (latency, at)
        if reason is not None:
            failed += 1
            if len(failures) < 20:
                failures.append({"at": round(at, 3), "ms": round(latency * 1000, 1), "reason": reason})
        else:
            if version not in versions:
                versions[version] = [0, at, at]
                order.append(version)
            entry = versions[version]
            entry[0] += 1
            entry[2] = at
            if marked_at is not None:
                after_mark[version] = after_mark.get(version, 0) + 1
        if args.ready_file and reason is None and not os.path.exists(args.ready_file):
            open(args.ready_file, "w").close()

    overlap = 0.0
    if len(order) > 1:
        first_new = min(versions[v][1] for v in order[1:])
        overlap = round(max(0.0, versions[order[0]][2] - first_new), 3)
    newest = order[-1] if order else None
    latencies.sort()

    def pct(p):
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    summary = {
        "requests": sent,
        "failed": failed,
        "seconds": round(time.monotonic() - start, 2),
        "max_ms": round(slowest[0] * 1000, 1),
        "max_at": round(slowest[1], 3),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "versions": {v: {"count": versions[v][0], "first": round(versions[v][1], 3),
                         "last": round(versions[v][2], 3)} for v in order},
        "overlap_seconds": overlap,
        "last_version": newest,
        "marked_at": None if marked_at is None else round(marked_at, 3),
        "after_mark": after_mark,
        "stale_after_mark": sum(n for v, n in after_mark.items() if v != newest),
        "failures": failures,
    }
    text = json.dumps(summary, indent=1)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
