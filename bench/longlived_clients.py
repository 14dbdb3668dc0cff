"""The client loop bench/sse.py and bench/ws.py share (one per protocol, one loop).

N clients each hold a long-lived connection (`once(args, stop)`: False when it could not
be opened, True when it delivered and then ended, a cut); cuts and failed reopens are
counted under the phase named in PHASE_FILE at that moment, and a failed open is retried
after 0.2 s. A probe tries a new client every 0.5 s (`probe_once(args)`: True when it got
its first event or echo). Stops when STOP_FILE exists or after MAX_SECONDS and writes the
JSON summary to OUT:
{"streams": N, "cuts": {phase: n}, "failed_reconnects": {phase: n}, "events": n,
"probes": {phase: n}, "probes_failed": {phase: n}}.
"""
import argparse
import json
import os
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


def delivered():
    """One event or echo received."""
    with lock:
        events[0] += 1


def hold(once, args, stop):
    while not stop.is_set():
        ended = once(args, stop)
        if stop.is_set():
            return
        if ended:
            count(cuts, phase(args.phase_file))
        else:
            count(failed, phase(args.phase_file))
            time.sleep(0.2)


def probe(probe_once, args, stop):
    """A new client every 0.5 s."""
    while not stop.is_set():
        name = phase(args.phase_file)
        count(probes, name)
        if not probe_once(args):
            count(probes_failed, name)
        time.sleep(0.5)


def parser(clients_flag):
    """The options both scripts take; `clients_flag` names the number of clients."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument(clients_flag, dest="clients", type=int, default=10)
    parser.add_argument("--phase-file", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--out", required=True)
    return parser


def run(args, once, probe_once):
    """Hold `args.clients` clients and the probe until the stop file or the time limit,
    then write the summary."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=hold, args=(once, args, stop), daemon=True)
        for _ in range(args.clients)
    ]
    threads.append(threading.Thread(target=probe, args=(probe_once, args, stop), daemon=True))
    for t in threads:
        t.start()
    deadline = time.time() + args.max_seconds
    while time.time() < deadline and not os.path.exists(args.stop_file):
        time.sleep(0.1)
    stop.set()
    with lock:
        summary = {
            "streams": args.clients,
            "cuts": dict(cuts),
            "failed_reconnects": dict(failed),
            "events": events[0],
            "probes": dict(probes),
            "probes_failed": dict(probes_failed),
        }
    with open(args.out, "w") as f:
        json.dump(summary, f)
