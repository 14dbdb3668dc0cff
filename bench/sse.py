#!/usr/bin/env python3
"""Hold N server-sent-event streams open through a proxy and count the ones cut.

Each stream asks for GET PATH with Host HOST on 127.0.0.1:PORT and reads `data:` lines.
A stream that ends (EOF, reset, error) is a cut: it is counted under the phase named in
PHASE_FILE at that moment, and the stream is opened again (a failed reopen, or one that
gets no event within 5 s, is a failed reconnect, retried after 0.2 s). Stops when
STOP_FILE exists or after MAX_SECONDS; writes a JSON summary to OUT:
{"streams": N, "cuts": {phase: n}, "failed_reconnects": {phase: n}, "events": n}.
Loopback only; bounded by MAX_SECONDS.
"""
import argparse
import json
import os
import socket
import threading
import time

lock = threading.Lock()
cuts = {}
failed = {}
events = [0]


def phase(path):
    try:
        with open(path) as f:
            return f.read().strip() or "idle"
    except OSError:
        return "idle"


def count(table, key):
    with lock:
        table[key] = table.get(key, 0) + 1


def hold(args, stop):
    first = True
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", args.port), timeout=5)
            sock.sendall(
                f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            reader = sock.makefile("rb")
            got = False
            while not stop.is_set():
                try:
                    line = reader.readline()
                except socket.timeout:
                    if not got:
                        raise
                    continue
                if not line:
                    break
                if line.startswith(b"data: "):
                    got = True
                    with lock:
                        events[0] += 1
            sock.close()
            if not got:
                raise OSError("no event")
            if not stop.is_set():
                count(cuts, phase(args.phase_file))
        except OSError:
            if stop.is_set():
                return
            if not first:
                count(failed, phase(args.phase_file))
            time.sleep(0.2)
        first = False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--path", default="/cgi-bin/events")
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--phase-file", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    threads = [
        threading.Thread(target=hold, args=(args, stop), daemon=True)
        for _ in range(args.streams)
    ]
    for t in threads:
        t.start()
    deadline = time.time() + args.max_seconds
    while time.time() < deadline and not os.path.exists(args.stop_file):
        time.sleep(0.1)
    stop.set()
    with lock:
        summary = {
            "streams": args.streams,
            "cuts": dict(cuts),
            "failed_reconnects": dict(failed),
            "events": events[0],
        }
    with open(args.out, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
