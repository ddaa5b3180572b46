"""Server-Sent Events to the dashboard's pages, without a thread per page.

Owns: the open event streams. A stream's request is answered by an HTTP worker, which
then hands the socket over here and is free again: one thread writes every event to
every stream (non-blocking, a bounded buffer each — a page that stops reading is dropped,
never waited for), notices closed streams, and sends a comment every ``keepalive``
seconds so proxies and dead peers are found. At most ``max_clients`` streams are open.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("reconciler.http")

KEEPALIVE = 15.0
#: Unsent bytes past this drop the stream (a page that stopped reading).
MAX_BUFFER = 4 << 20


def event(name: str, data: str, event_id: int | None = None) -> bytes:
    """One SSE event (``data`` on one line: compact JSON has no newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}event: {name}\n{lines}\n".encode()


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    writing: bool = False


class SseHub:
    """The open streams and the thread that writes to them."""

    def __init__(self, max_clients: int = 32, keepalive: float = KEEPALIVE,
                 max_buffer: int = MAX_BUFFER) -> None:
        self.max_clients, self.keepalive, self.max_buffer = max_clients, keepalive, \
            max_buffer
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        # the selector and wake-up pair exist only once started (a daemon stepped by hand
        # never starts the hub and holds no descriptor for it)
        self._sel: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sse", daemon=True)
        self._last_ping = time.monotonic()

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def room(self) -> bool:
        return self._sel is not None and self.clients < self.max_clients and \
            not self._stopping.is_set()

    def start(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._wake()
            self._thread.join(5)
        with self._lock:
            for c in list(self._clients.values()):
                self._drop(c)
        for closable in (self._sel, self._wake_r, self._wake_w):
            if closable is not None:
                closable.close()

    def add(self, sock: socket.socket) -> bool:
        """Take over ``sock`` (its response head already sent); False when full."""
        with self._lock:
            if len(self._clients) >= self.max_clients or self._stopping.is_set() or \
                    self._sel is None:
                return False
            sock.setblocking(False)
            c = _Client(sock)
            self._clients[id(c)] = c
            self._sel.register(sock, selectors.EVENT_READ, c)
        self._wake()
        return True

    def broadcast(self, data: bytes) -> None:
        """Queue ``data`` for every stream and write what can be written now."""
        with self._lock:
            for c in list(self._clients.values()):
                c.buf += data
                self._flush(c)

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def _flush(self, c: _Client) -> None:
        """Write what the socket takes; watch it for writability while bytes remain."""
        try:
            while c.buf:
                n = c.sock.send(c.buf)
                del c.buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(c)
            return
        if len(c.buf) > self.max_buffer:
            log.info("sse: dropping a stream that stopped reading")
            self._drop(c)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.buf else 0)
        if bool(c.buf) != c.writing and self._sel is not None:
            c.writing = bool(c.buf)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.modify(c.sock, want, c)

    def _drop(self, c: _Client) -> None:
        self._clients.pop(id(c), None)
        with contextlib.suppress(KeyError, ValueError, OSError, AttributeError):
            self._sel.unregister(c.sock)  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            c.sock.close()

    def _loop(self) -> None:
        sel, wake = self._sel, self._wake_r
        assert sel is not None and wake is not None
        while not self._stopping.is_set():
            try:
                events = sel.select(timeout=1.0)
            except OSError:  # pragma: no cover - closed under us
                return
            with self._lock:
                for key, mask in events:
                    if key.fileobj is wake:
                        with contextlib.suppress(OSError):
                            wake.recv(4096)
                        continue
                    c = key.data
                    if not isinstance(c, _Client) or id(c) not in self._clients:
                        continue
                    if mask & selectors.EVENT_READ:
                        try:
                            got = c.sock.recv(4096)
                        except (BlockingIOError, InterruptedError):
                            got = b"-"
                        except OSError:
                            got = b""
                        if not got:  # the page went away
                            self._drop(c)
                            continue
                    if mask & selectors.EVENT_WRITE:
                        self._flush(c)
                now = time.monotonic()
                if now - self._last_ping >= self.keepalive:
                    self._last_ping = now
                    for c in list(self._clients.values()):
                        c.buf += b": ping\n\n"
                        self._flush(c)
