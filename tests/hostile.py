"""A hostile HTTP server on 127.0.0.1 for the transport's tests and bench/hostile.py: answers that trickle,
never end, are huge, or never come (accept and close, reset).

``python tests/hostile.py [interval_s]`` serves on a free port, prints its URL and runs until killed.

Paths (any method):
  /ok              200 {"ok": true}
  /trickle         200, Content-Length 1000, then one body byte per interval
  /trickle-head    the status line and headers, one byte per interval
  /endless         200, chunked, 64 KiB chunks for ever
  /big             200, Content-Length 100 MB, and the 100 MB
  /big-unannounced 200, no Content-Length, 100 MB then close
  /close           reads the request, closes without answering
  /reset           reads the request, resets the connection (RST)
  /flaky           closes without answering every first request of a method, answers the next
  /trace           500 whose body carries a Python traceback
  /redirect?to=URL 307 to URL
"""

from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

BIG = 100_000_000
TRACE = (b'{"error": "internal", "detail": "Traceback (most recent call last):\\n  File \\"/srv/app.py\\", '
         b'line 42, in handler\\nKeyError: \'id\'"}')


class HostileServer:
    """Threads on 127.0.0.1 and a free port; ``hits[(method, path)]`` counts the requests received."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.hits: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    outer._handle(self.request)
                except OSError:
                    pass  # the client gave up: that is the point

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.hits[(method, path)]

    def _handle(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers.get("content-length", 0) or 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        with self._lock:
            self.hits[(method, path)] += 1
            nth = self.hits[(method, path)]
        if path == "/ok" or path == "/":
            self._answer(sock, 200, b'{"ok": true}')
        elif path == "/trace":
            self._answer(sock, 500, TRACE)
        elif path == "/redirect":
            to = parse_qs(parts.query).get("to", ["/ok"])[0]
            sock.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n".encode())
        elif path == "/trickle":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                sock.sendall(b"x")
                time.sleep(self.interval_s)
        elif path == "/trickle-head":
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 1000:
                sock.sendall(bytes([byte]))
                time.sleep(self.interval_s)
        elif path == "/endless":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
            while True:
                sock.sendall(chunk)
        elif path in ("/big", "/big-unannounced"):
            announced = f"Content-Length: {BIG}\r\n" if path == "/big" else "Connection: close\r\n"
            sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{announced}\r\n".encode())
            if method == "HEAD":
                return
            block = b"b" * 1_000_000
            for _ in range(BIG // len(block)):
                sock.sendall(block)
        elif path == "/close" or (path == "/flaky" and nth % 2 == 1):
            sock.close()
        elif path == "/reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        else:
            self._answer(sock, 200 if path == "/flaky" else 404, b'{"ok": true}')

    @staticmethod
    def _answer(sock: socket.socket, status: int, body: bytes) -> None:
        reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}[status]
        sock.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


if __name__ == "__main__":
    server = HostileServer(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
