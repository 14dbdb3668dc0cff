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
import socket

import longlived_clients as clients


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
                clients.delivered()
    except OSError:
        pass
    finally:
        sock.close()
    return got


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
    parser = clients.parser("--streams")
    parser.add_argument("--path", default="/cgi-bin/events")
    clients.run(parser.parse_args(), stream_once, first_event)


if __name__ == "__main__":
    main()
