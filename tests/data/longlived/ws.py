"""A WebSocket echo server (RFC 6455, Python's standard library only) that drains as a
well-behaved app does: on SIGTERM it stops accepting (the listening socket closes, so the
proxies retry new connections elsewhere), writes /tmp/draining, and keeps its open
connections until their clients close them; then it exits.

Port 8080. `GET /health` answers `ok`; `GET /` answers `v$VERSION`; a WebSocket upgrade
on any path echoes each text message back as `v$VERSION <message>`."""

import base64
import hashlib
import os
import signal
import socket
import struct
import threading
import time

VERSION = "v" + os.environ.get("VERSION", "?")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
lock = threading.Lock()
connections = 0
stopping = threading.Event()


class Peer:
    def __init__(self, conn):
        self.conn = conn
        self.buffer = b""

    def fill(self, size):
        while len(self.buffer) < size:
            chunk = self.conn.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def take(self, size):
        self.fill(size)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise ConnectionError("header too long")
            self.fill(len(self.buffer) + 1)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return lines[0], headers

    def frame(self):
        first, second = self.take(2)
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.take(8))
        mask = self.take(4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.take(length)))
        return opcode, payload

    def send(self, opcode, payload):
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        self.conn.sendall(header + payload)

    def answer(self, body):
        self.conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )


def serve(conn):
    global connections
    peer = Peer(conn)
    try:
        request, headers = peer.head()
        if headers.get("upgrade", "").lower() != "websocket":
            health = request.split(" ")[1:2] == ["/health"]
            peer.answer(b"ok\n" if health else VERSION.encode() + b"\n")
            return
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            + b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n\r\n"
        )
        while True:
            opcode, payload = peer.frame()
            if opcode == 0x8:
                peer.send(0x8, payload[:2])
                return
            if opcode == 0x9:
                peer.send(0xA, payload)
            elif opcode == 0x1:
                peer.send(0x1, VERSION.encode() + b" " + payload)
    except (ConnectionError, OSError, KeyError, ValueError, struct.error):
        pass
    finally:
        conn.close()
        with lock:
            connections -= 1


def main():
    global connections
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 8080))
    listener.listen(128)

    def on_term(*_):
        stopping.set()
        listener.close()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stopping.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        with lock:
            connections += 1
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    open("/tmp/draining", "w").close()
    while True:
        with lock:
            if connections == 0:
                return
        time.sleep(0.2)


if __name__ == "__main__":
    main()
