#!/usr/bin/env python3
"""Hold N server-sent-event streams open through a proxy and count the ones cut.

Each stream asks for GET PATH with Host HOST on 127.0.0.1:PORT and reads `data:` lines
(`Connection: close`, so a stream the proxy ends is an end of the connection too).
A stream that delivered events and then ends (EOF, reset, error, 30 s without an event)
is a cut: it is counted under the phase named in PHASE_FILE at that moment, and the
stream is opened again. An open that fails or gets no event within 5 s is a failed
open, counted the same way and retried after 0.2 s. Besides, a probe opens a new stream
every 0.5 s (a new client), waits for its first event (15 s at most) and closes it: a
probe that gets no event fails. Stops when
STOP_FILE exists or after MAX_SECONDS; writes a JSON summary to OUT:
{"streams": N, "cuts": {phase: n}, "failed_reconnects": {phase: n}, "events": n,
"probes": {phase: n}, "probes_failed": {phase: n}}.
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
probes = {}
probes_failed = {}
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


def stream_once(args, stop):
    """One stream: False when it could not be opened (no event within 5 s), True when it
    delivered events and then ended (EOF, reset or any error: a cut)."""
    try:
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=5)
        sock.sendall(
            f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
    except OSError:
        return False
    got = False
    try:
        reader = sock.makefile("rb")
        while not stop.is_set():
            line = reader.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                got = True
                sock.settimeout(30)
                with lock:
                    events[0] += 1
    except OSError:
        pass
    finally:
        sock.close()
    return got


def hold(args, stop):
    while not stop.is_set():
        delivered = stream_once(args, stop)
        if stop.is_set():
            return
        if delivered:
            count(cuts, phase(args.phase_file))
        else:
            count(failed, phase(args.phase_file))
            time.sleep(0.2)


def probe(args, stop):
    """A new client every 0.5 s: open a stream, wait for its first event, close it."""
    while not stop.is_set():
        name = phase(args.phase_file)
        count(probes, name)
        if not first_event(args):
            count(probes_failed, name)
        time.sleep(0.5)


def first_event(args):
    try:
        with socket.create_connection(("127.0.0.1", args.port), timeout=15) as sock:
            sock.sendall(
                f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
                "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
            )
            reader = sock.makefile("rb")
            while True:
                line = reader.readline()
                if not line:
                    return False
                if line.startswith(b"data: "):
                    return True
    except OSError:
        return False


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
    threads.append(threading.Thread(target=probe, args=(args, stop), daemon=True))
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
            "probes": dict(probes),
            "probes_failed": dict(probes_failed),
        }
    with open(args.out, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
