"""The daemon's HTTP server against hostile clients, over real loopback sockets:
malformed signature headers, many parallel deliveries, idle and slow connections,
oversized headers, stale and replayed Standard-Webhooks deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack

import pytest

from reconciler.daemon.httpserver import Endpoints, HttpServer
from reconciler.daemon.metrics import Metrics

SECRET = b"hardening-secret-3a9f"
BODY = json.dumps({"ref": "refs/heads/main"}).encode()


class Served:
    def __init__(self, **options: float) -> None:
        self.pushes = 0
        self.handled_by: set[str] = set()
        self.lock = threading.Lock()
        self.metrics = Metrics()
        self.server = HttpServer("127.0.0.1:0", Endpoints(
            metrics=self.metrics, ready=lambda: (True, ""), on_push=self._push, branch="main",
            webhook_secret=SECRET), **options)  # type: ignore[arg-type]
        self.port = self.server.port

    def _push(self) -> None:
        with self.lock:
            self.pushes += 1
            self.handled_by.add(threading.current_thread().name)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, raw: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
        with self.connect(timeout) as s:
            s.sendall(raw)
            return _response(s)


def _response(s: socket.socket) -> tuple[int, bytes]:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _post(headers: Mapping[str, str] | Sequence[tuple[str, str | bytes]],
          body: bytes = BODY) -> bytes:
    items = [(k, v.encode() if isinstance(v, str) else v) for k, v in
             (headers.items() if isinstance(headers, Mapping) else headers)]
    lines = [b"POST /webhook HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body)]
    lines += [k.encode() + b": " + v for k, v in items]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _signed(body: bytes = BODY) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()}


def _std(msg_id: str, ts: int, body: bytes = BODY) -> dict[str, str]:
    mac = hmac.new(SECRET, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture()
def served() -> Iterator[Served]:
    s = Served()
    s.server.start()
    yield s
    s.server.stop()


NON_ASCII = [
    [("X-Hub-Signature-256", b"sha256=" + "é".encode() * 32)],
    [("X-Hub-Signature-256", b"sha256=\xff\xfe" + b"0" * 62)],
    [("X-Gitea-Signature", "ß".encode() * 32)],
    [("webhook-id", "m\u00e9".encode()), ("webhook-timestamp", str(int(time.time())).encode()),
     ("webhook-signature", b"v1,\xc3\xa9\xc3\xa9")],
    [("X-Hub-Signature-256", b"sha256=\xe2\x82\xac"), ("X-GitHub-Delivery", b"\xe2\x82\xac")],
]


@pytest.mark.parametrize("headers", NON_ASCII)
def test_non_ascii_signature_headers_get_a_bare_401(
        served: Served, headers: list[tuple[str, bytes]], capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Used to drop the connection with a TypeError traceback from hmac.compare_digest."""
    caplog.set_level(logging.DEBUG)
    assert served.request(_post(headers)) == (401, b"unauthorized\n")
    assert served.pushes == 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)
    assert b'reconciler_webhook_requests_total{result="unauthorized"} 1.0' in (
        served.metrics.exposition())


def test_two_hundred_parallel_signed_deliveries_all_get_an_answer(served: Served) -> None:
    """With a listen backlog of 5 and a thread per connection, 128-165 of these were reset.
    Now they queue for a fixed pool of 16 worker threads."""
    n = 200
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def one(i: int) -> None:
        raw = _post(_signed())
        try:
            barrier.wait(10)
            results[i] = served.request(raw, timeout=20)
        except OSError as e:
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    failed = [r for r in results if r != (202, b"fetch scheduled\n")]
    assert failed == [], f"{len(failed)} of {n} failed, e.g. {failed[:3]}"
    assert served.pushes == n
    assert 1 <= len(served.handled_by) <= 16, sorted(served.handled_by)


def test_healthz_answers_while_three_hundred_connections_sit_idle(served: Served) -> None:
    with ExitStack() as stack:
        for _ in range(300):
            stack.enter_context(served.connect())
        start = time.monotonic()
        assert served.request(HEALTHZ, timeout=2) == (200, b"ok\n")
        assert time.monotonic() - start < 2


def test_idle_and_slow_connections_are_closed_at_their_deadline() -> None:
    s = Served(header_timeout=1.0, body_timeout=1.5)
    s.server.start()
    try:
        idle = [s.connect() for _ in range(20)]
        slow_body = s.connect()
        slow_body.sendall(b"POST /webhook HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789")
        slowloris = s.connect()
        start = time.monotonic()
        # a header byte every 0.2 s: each read is quick, only a total deadline stops it
        with pytest.raises(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nX-a: " + b"a" * 100:
                slowloris.sendall(bytes([byte]))
                time.sleep(0.2)
        assert time.monotonic() - start < 2.0
        for sock in [*idle, slow_body]:
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed by the server, no answer
            sock.close()
        slowloris.close()
        assert time.monotonic() - start < 3.0
        assert s.pushes == 0
        assert s.request(HEALTHZ, timeout=2) == (200, b"ok\n")
    finally:
        s.server.stop()


def test_connection_cap_drops_the_oldest_unfinished_connection() -> None:
    s = Served(max_connections=20)
    s.server.start()
    try:
        idle = [s.connect() for _ in range(40)]
        assert s.request(HEALTHZ, timeout=2) == (200, b"ok\n")
        idle[0].settimeout(2)
        assert idle[0].recv(10) == b""
        for sock in idle:
            sock.close()
    finally:
        s.server.stop()


def test_oversized_headers_are_refused(served: Served) -> None:
    """The event loop buffers at most 64 KiB of request head: a 431, or a reset when the
    client is still sending as the server closes; never an unbounded buffer."""
    raw = b"GET /healthz HTTP/1.1\r\nX-Filler: " + b"a" * (128 << 10) + b"\r\n\r\n"
    with served.connect() as sock:
        try:
            sock.sendall(raw)
            code, _ = _response(sock)
            assert code == 431
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert served.request(HEALTHZ) == (200, b"ok\n")


def test_expect_100_continue_is_answered(served: Served) -> None:
    """curl sends ``Expect: 100-continue`` for larger bodies and waits before sending it."""
    body = b'{"ref": "refs/heads/main", "pad": "' + b"x" * 4000 + b'"}'
    head = _post([*_signed(body).items(), ("Expect", "100-continue")], body)
    head = head[:len(head) - len(body)]
    with served.connect() as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        code, _ = _response(sock)
    assert code == 202


def test_oversized_body_still_gets_413_after_draining(served: Served) -> None:
    body = b"x" * (2 << 20)
    assert served.request(_post(_signed(body), body), timeout=10) == (413,
                                                                       b"payload too large\n")


def test_standard_webhooks_stale_or_replayed_deliveries_are_refused(served: Served) -> None:
    now = int(time.time())
    assert served.request(_post(_std("msg-1", now))) == (202, b"fetch scheduled\n")
    assert served.request(_post(_std("msg-1", now))) == (401, b"unauthorized\n")  # replay
    assert served.request(_post(_std("msg-2", now - 600))) == (401, b"unauthorized\n")
    assert served.request(_post(_std("msg-3", now + 600))) == (401, b"unauthorized\n")
    assert served.request(_post(_std("msg-2", now))) == (202, b"fetch scheduled\n")
    assert served.pushes == 2
    metrics = served.metrics.exposition()
    assert b'reconciler_webhook_requests_total{result="replayed"} 1.0' in metrics
    assert b'reconciler_webhook_requests_total{result="unauthorized"} 2.0' in metrics


def test_github_delivery_id_replay_is_refused(served: Served) -> None:
    headers = {**_signed(), "X-GitHub-Delivery": "9f0c1e2a-0000-11f0-8000-000000000001"}
    assert served.request(_post(headers)) == (202, b"fetch scheduled\n")
    assert served.request(_post(headers)) == (401, b"unauthorized\n")
    assert served.pushes == 1


def test_stop_closes_the_listening_socket() -> None:
    s = Served()
    s.server.start()
    port = s.port
    s.server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    Served().server.stop()  # never started: nothing to wait for
