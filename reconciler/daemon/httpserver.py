"""The daemon's HTTP endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/webhook``.

Owns: the listening socket, routing, body limits and status codes. What readiness means
and what a push does are the daemon's callbacks; a refused webhook always gets the same
bare 401 so a caller learns nothing about why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reconciler.daemon import webhook
from reconciler.daemon.metrics import Metrics

log = logging.getLogger("reconciler.http")


@dataclass
class Endpoints:
    """What the handlers call into."""

    metrics: Metrics
    ready: Callable[[], tuple[bool, str]]
    on_push: Callable[[], None]
    branch: str
    webhook_secret: bytes = b""


#: Refused bodies up to this size are read and dropped before the 413 is sent.
DRAIN_LIMIT = 16 << 20


def _handler(ep: Endpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "reconciler"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s", format % args)

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok, why = ep.ready()
                self._send(200 if ok else 503, (why or "ready").encode() + b"\n")
            elif path == "/metrics":
                self._send(200, ep.metrics.exposition(),
                           "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/webhook":
                self._send(404, b"not found\n")
                return
            self._webhook()

        def _webhook(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._refuse(411, b"length required\n", "no-length")
                return
            if length < 0 or length > webhook.MAX_BODY:
                self._drain(length)
                self._refuse(413, b"payload too large\n", "too-large")
                return
            body = self.rfile.read(length)
            if not webhook.authentic(ep.webhook_secret, body, dict(self.headers.items())):
                self._refuse(401, b"unauthorized\n", "unauthorized")
                return
            delivery = webhook.parse(body)
            if not webhook.concerns(delivery, ep.branch):
                ep.metrics.webhooks.labels("other-ref").inc()
                self._send(202, b"ignored: another ref\n")
                return
            ep.metrics.webhooks.labels("accepted").inc()
            ep.on_push()
            self._send(202, b"fetch scheduled\n")

        def _drain(self, length: int) -> None:
            """Read and drop a refused body of up to DRAIN_LIMIT bytes (in small chunks,
            within a short timeout), so the sender sees the 413 instead of a reset."""
            if not 0 < length <= DRAIN_LIMIT:
                return
            self.connection.settimeout(2.0)
            try:
                while length > 0:
                    chunk = self.rfile.read(min(length, 65536))
                    if not chunk:
                        return
                    length -= len(chunk)
            except OSError:
                return

        def _refuse(self, code: int, body: bytes, result: str) -> None:
            ep.metrics.webhooks.labels(result).inc()
            self.close_connection = True
            self._send(code, body)

    return Handler


class HttpServer:
    """Serves the endpoints on ``host:port`` in a background thread."""

    def __init__(self, address: str, endpoints: Endpoints) -> None:
        host, _, port = address.rpartition(":")
        self._server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)),
                                           _handler(endpoints))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (a no-op wait when never started) and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
