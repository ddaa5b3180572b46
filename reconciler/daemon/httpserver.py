"""The daemon's HTTP endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/webhook``, and
the dashboard's ``/``, ``/static/…`` and ``/api/…`` (``daemon.dashboard.web`` decides
those; an event stream's socket is handed to the dashboard's SSE hub, freeing the worker).

Owns: the listening socket, connection limits, routing, body limits and status codes.
What readiness means and what a push does are the daemon's callbacks; a refused webhook
always gets the same bare 401 so a caller learns nothing about why.

The network is hostile, so the server stays responsive under slow or many connections:
one event-loop thread accepts (a real listen backlog) and reads each request — headers
within ``header_timeout``, a body of up to ``webhook.MAX_BODY`` within ``body_timeout`` —
without tying up a thread; only complete requests go to a fixed pool of ``workers``
threads (the rest queue). Idle and slow connections are closed at their deadline. When
unfinished connections reach ``max_connections`` (derived from the file-descriptor
limit), new ones wait in the listen backlog, and the oldest unfinished one is dropped
once it has had ``EVICT_GRACE`` seconds, so ``/healthz`` still answers while hundreds
of connections sit idle, and a burst of quick requests is queued, never reset.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import re
import resource
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from reconciler.daemon import webhook
from reconciler.daemon.dashboard.web import SECURITY_HEADERS, DashboardWeb, Response, Stream
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
    replay: webhook.ReplayCache = field(default_factory=webhook.ReplayCache)
    dashboard: DashboardWeb | None = None


#: Refused bodies up to this size are read and dropped before the 413 is sent.
DRAIN_LIMIT = 16 << 20
#: Request line plus headers larger than this are refused (431) before any parsing.
MAX_HEADER = 64 << 10
BACKLOG = 128
WORKERS = 16
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
#: At the connection cap, an unfinished connection this old may be dropped for a new one.
EVICT_GRACE = 0.5

_END = re.compile(rb"\r?\n\r?\n")
_EXPECT = re.compile(rb"(?im)^expect[ \t]*:[ \t]*100-continue[ \t]*\r?$")
_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?$")


def _default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 4096
    return max(16, min(1024, soft // 2))


def _handler(ep: Endpoints, body_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "reconciler"
        sys_version = ""
        #: The socket now belongs to the SSE hub: the worker must not close it.
        detached = False

        def __init__(self, conn: socket.socket, head: bytes, addr: Any, server: Any) -> None:
            self._head = head
            super().__init__(conn, addr, server)

        def setup(self) -> None:
            super().setup()
            # the event loop has already read the request (or at least its headers)
            self.rfile = io.BufferedReader(_Prefixed(self._head, self.connection))

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s", format % args)

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.close_connection = True
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _respond(self, r: Response) -> None:
            body = r.gz if r.gz is not None else r.body
            self.close_connection = True
            self.send_response(r.code)
            self.send_header("Content-Type", r.ctype)
            self.send_header("Content-Length", str(len(body)))
            if r.gz is not None:
                self.send_header("Content-Encoding", "gzip")
            for k, v in (*SECURITY_HEADERS, *r.headers):
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _dashboard_get(self, web: DashboardWeb, path: str) -> None:
            result = web.get(path, self._headers(), str(self.client_address[0]))
            if isinstance(result, Response):
                self._respond(result)
                return
            self._stream(web, result)

        def _stream(self, web: DashboardWeb, s: Stream) -> None:
            """Send the event stream's head and first events, then hand the socket to
            the hub (the worker is free; the hub writes every later event)."""
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            for k, v in SECURITY_HEADERS:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(s.first)
            self.wfile.flush()
            if web.dashboard.hub.add(self.connection):
                self.detached = True

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            web = ep.dashboard
            if web is not None and web.handles(path):
                self._dashboard_get(web, path)
            elif path == "/healthz":
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
            path = self.path.split("?", 1)[0]
            if ep.dashboard is not None and path.startswith("/api/"):
                self._respond(ep.dashboard.post(path, self._headers(),
                                                str(self.client_address[0])))
                return
            if path != "/webhook":
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
            if len(body) < length:
                self.close_connection = True
                return
            result = webhook.accept(ep.webhook_secret, body, dict(self.headers.items()),
                                    ep.replay)
            if result != "ok":
                self._refuse(401, b"unauthorized\n", result)
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
            within ``body_timeout`` in total), so the sender sees the 413, not a reset."""
            if not 0 < length <= DRAIN_LIMIT:
                return
            deadline = time.monotonic() + body_timeout
            try:
                while length > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.connection.settimeout(left)
                    chunk = self.rfile.read1(min(length, 65536))
                    if not chunk:
                        return
                    length -= len(chunk)
            except OSError:
                return

        def _refuse(self, code: int, body: bytes, result: str) -> None:
            ep.metrics.webhooks.labels(result).inc()
            self._send(code, body)

    return Handler


class _Prefixed(io.RawIOBase):
    """A socket's input with what was already read from it served first."""

    def __init__(self, head: bytes, sock: socket.socket) -> None:
        self._head = memoryview(head)
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(out), len(self._head))
            out[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._sock.recv_into(out)


@dataclass
class _Pending:
    sock: socket.socket
    addr: Any
    deadline: float
    accepted: float
    buf: bytearray = field(default_factory=bytearray)
    need: int | None = None  # total bytes once the headers are in


class HttpServer:
    """Serves the endpoints on ``host:port``: an event-loop thread and a worker pool."""

    def __init__(self, address: str, endpoints: Endpoints, *, workers: int = WORKERS,
                 backlog: int = BACKLOG, header_timeout: float = HEADER_TIMEOUT,
                 body_timeout: float = BODY_TIMEOUT,
                 max_connections: int | None = None) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, int(port)), family=family, backlog=backlog)
        self._sock.setblocking(False)
        self._handler = _handler(endpoints, body_timeout)
        self._header_timeout, self._body_timeout = header_timeout, body_timeout
        self._max = max_connections or _default_max_connections()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._jobs: queue.SimpleQueue[tuple[socket.socket, bytes, Any] | None] = (
            queue.SimpleQueue())
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = threading.Event()
        self._listening = False
        self._threads = [threading.Thread(target=self._loop, name="http", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"http-{i}", daemon=True)
                          for i in range(workers)]

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._listen(True)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop serving (a no-op wait when never started) and close the sockets."""
        self._stopping.set()
        if self._threads[0].is_alive():
            self._wake_w.send(b"x")
            self._threads[0].join(10)
        for t in self._threads[1:]:
            if t.is_alive():
                self._jobs.put(None)
        for t in self._threads[1:]:
            if t.is_alive():
                t.join(self._body_timeout)
        for p in list(self._pending.values()):
            self._close(p)
        self._sel.close()
        self._sock.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the event loop: accept, read requests, enforce deadlines --------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._listen(self._room())
            try:
                events = self._sel.select(timeout=0.25 if self._listening else 0.05)
            except OSError:  # pragma: no cover - the selector was closed under us
                return
            for key, _ in events:
                if key.fileobj is self._sock:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                elif isinstance(key.data, _Pending):
                    self._read(key.data)
            self._expire()

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._sel.register(self._sock, selectors.EVENT_READ)
        elif self._listening and not on:
            self._sel.unregister(self._sock)
        self._listening = on

    def _oldest(self) -> _Pending | None:
        return next(iter(self._pending.values()), None)

    def _room(self) -> bool:
        """Whether a new connection can be taken now (at the cap: by dropping the oldest
        unfinished one, once it has had its grace period)."""
        if len(self._pending) < self._max:
            return True
        oldest = self._oldest()
        return oldest is not None and time.monotonic() - oldest.accepted >= EVICT_GRACE

    def _accept(self) -> None:
        for _ in range(256):
            if not self._room():
                return  # the rest wait in the listen backlog
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE/ENFILE: make room, or wait a moment
                if not self._evict_oldest():
                    log.warning("http: cannot accept a connection: %s", e.strerror)
                    time.sleep(0.05)
                    return
                continue
            while len(self._pending) >= self._max:
                self._evict_oldest()
            conn.setblocking(False)
            now = time.monotonic()
            p = _Pending(conn, addr, now + self._header_timeout, now)
            self._pending[id(p)] = p
            self._sel.register(conn, selectors.EVENT_READ, p)

    def _evict_oldest(self) -> bool:
        oldest = self._oldest()
        if oldest is None:
            return False
        self._close(oldest)
        return True

    def _close(self, p: _Pending) -> None:
        self._pending.pop(id(p), None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(p.sock)
        p.sock.close()

    def _read(self, p: _Pending) -> None:
        try:
            data = p.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(p)
            return
        if not data:
            self._close(p)
            return
        p.buf += data
        if p.need is None:
            end = _END.search(p.buf)
            if end is None:
                if len(p.buf) > MAX_HEADER:
                    self._reply_and_close(p, b"HTTP/1.0 431 Request Header Fields Too Large"
                                             b"\r\nContent-Length: 0\r\nConnection: close"
                                             b"\r\n\r\n")
                return
            m = _LENGTH.search(p.buf, 0, end.start() + 2)
            length = int(m.group(1)) if m else 0
            if length > webhook.MAX_BODY:
                self._dispatch(p)  # the worker drains it (bounded) and answers 413
                return
            p.need = end.end() + length
            if len(p.buf) < p.need and _EXPECT.search(p.buf, 0, end.start() + 2):
                try:
                    p.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    self._close(p)
                    return
            p.deadline = time.monotonic() + self._body_timeout
        if len(p.buf) >= p.need:
            self._dispatch(p)

    def _reply_and_close(self, p: _Pending, raw: bytes) -> None:
        with contextlib.suppress(OSError):
            p.sock.send(raw)
        self._close(p)

    def _dispatch(self, p: _Pending) -> None:
        self._pending.pop(id(p), None)
        self._sel.unregister(p.sock)
        p.sock.setblocking(True)
        p.sock.settimeout(self._body_timeout)
        self._jobs.put((p.sock, bytes(p.buf), p.addr))

    def _expire(self) -> None:
        now = time.monotonic()
        for p in [p for p in self._pending.values() if p.deadline <= now]:
            self._close(p)

    # -- the worker pool -------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            conn, head, addr = job
            handler = None
            try:
                handler = self._handler(conn, head, addr, self)  # type: ignore[call-arg]
            except Exception as e:
                log.warning("http: request from %s failed: %s", addr[0], type(e).__name__)
            finally:
                if not getattr(handler, "detached", False):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_WR)
                    conn.close()
