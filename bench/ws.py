#!/usr/bin/env python3
"""Hold N WebSocket connections open through a proxy and count the ones cut.

Each connection upgrades GET / with Host HOST on 127.0.0.1:PORT (the echo server of
tests/data/longlived/ws.py) and sends a text message every second, waiting 10 s at most
for its echo. A connection that echoed and then ends (close frame, EOF, reset, no echo)
is a cut: it is counted under the phase named in PHASE_FILE at that moment, and the
connection is opened again. An open that fails (no upgrade or no first echo within 5 s)
is a failed reopen, counted the same way and retried after 0.2 s. Besides, a probe opens
a new connection every 0.5 s (a new client), waits for one echo and closes it: a probe
without its echo fails. Stops when STOP_FILE exists or after MAX_SECONDS; writes a JSON
summary to OUT, the same shape as bench/sse.py's:
{"streams": N, "cuts": {phase: n}, "failed_reconnects": {phase: n}, "events": n,
"probes": {phase: n}, "probes_failed": {phase: n}} (events: echoes received).
Python's standard library only; loopback only; bounded by MAX_SECONDS.
"""
import base64
import os
import socket
import struct

import longlived_clients as clients


class Client:
    """One WebSocket connection (client side: masked frames)."""

    def __init__(self, args, timeout):
        self.sock = socket.create_connection(("127.0.0.1", args.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {args.host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n".encode()
            + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.fill(len(self.buffer) + 1)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise OSError("no upgrade: " + head.split(b"\r\n")[0].decode("latin-1"))
        self.sent = 0

    def fill(self, size):
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            self.buffer += chunk

    def take(self, size):
        self.fill(size)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def echo(self):
        self.sent += 1
        payload = f"message {self.sent}".encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
        while True:
            first, second = self.take(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self.take(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self.take(8))
            data = self.take(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise OSError("close frame")
            if opcode == 0x1:
                if not data.endswith(payload):
                    raise OSError("the echo of another message")
                return

    def close(self):
        try:
            self.sock.sendall(struct.pack("!BB", 0x88, 0x80) + b"\0\0\0\0")
        except OSError:
            pass
        self.sock.close()


def connection_once(args, stop):
    """One connection: False when it could not be opened, True when it echoed and then
    ended (a cut)."""
    try:
        client = Client(args, 5)
        client.echo()
    except (OSError, ValueError, struct.error):
        return False
    clients.delivered()
    client.sock.settimeout(10)
    try:
        while not stop.wait(1):
            client.echo()
            clients.delivered()
    except (OSError, ValueError, struct.error):
        client.sock.close()
        return True
    client.close()
    return True


def echo_once(args):
    """A new client: connect, one echo, close."""
    try:
        client = Client(args, 15)
        client.echo()
        client.close()
        return True
    except (OSError, ValueError, struct.error):
        return False


def main():
    clients.run(clients.parser("--connections").parse_args(), connection_once, echo_once)


if __name__ == "__main__":
    main()
