"""The dashboard on the daemon's real HTTP server, over loopback sockets, fed tick reports
planned from the example fleet: ``/api/status`` is what ``reconciler status -o json``
prints; access (loopback Host, bearer token, session cookie, off elsewhere); the CSP and
security headers; etags and gzip; event streams that do not hold a worker; no secret in
any document."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.cli import main as cli_main
from reconciler.compose.oneshot import load_directory
from reconciler.core.live import LiveSnapshot, ServiceLive, snapshot_from_json
from reconciler.core.model import DesiredState
from reconciler.core.planner import plan
from reconciler.core.statusview import status_json
from reconciler.daemon.config import DashboardConfig
from reconciler.daemon.dashboard.state import Dashboard, DashboardSources
from reconciler.daemon.dashboard.web import CSP, DashboardWeb
from reconciler.daemon.httpserver import Endpoints, HttpServer
from reconciler.daemon.logs import register_secret
from reconciler.daemon.metrics import Metrics
from reconciler.engine.tick import TickReport

ROOT = Path(__file__).resolve().parents[2]
REPO, LIVE = ROOT / "example-repo", ROOT / "examples" / "live-mid-rollout.json"
TOKEN = "dashboard-token-0123456789abcdef"


def fleet() -> tuple[DesiredState, LiveSnapshot]:
    result = load_directory(REPO)
    assert result.desired is not None
    return result.desired, snapshot_from_json(json.loads(LIVE.read_text()))


def report(desired: DesiredState, live: LiveSnapshot, now: datetime | None = None) -> TickReport:
    p = plan(desired, live, now or datetime.now(UTC))
    return TickReport(desired.revision, (), p, (), live=live)


class Served:
    """A dashboard behind the daemon's HTTP server on a free loopback port."""

    def __init__(self, cfg: DashboardConfig, desired: DesiredState) -> None:
        self.desired = desired
        self.dashboard = Dashboard(cfg, 1, DashboardSources(), lambda: self.desired,
                                   lambda: (True, "ready"))
        self.web = DashboardWeb(self.dashboard, cfg, "127.0.0.1:0")
        self.server = HttpServer("127.0.0.1:0", Endpoints(
            Metrics(), lambda: (True, "ready"), lambda: None, "main", dashboard=self.web))
        self.port = self.server.port
        self.dashboard.start()
        self.server.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url(path), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def stop(self) -> None:
        self.server.stop()
        self.dashboard.stop()


@pytest.fixture
def served() -> Iterator[Served]:
    desired, live = fleet()
    s = Served(DashboardConfig(), desired)
    s.dashboard.on_tick(report(desired, live))
    yield s
    s.stop()


@pytest.fixture
def token_served(tmp_path: Path) -> Iterator[Served]:
    desired, live = fleet()
    (tmp_path / "token").write_text(TOKEN + "\n")
    s = Served(DashboardConfig(token_file=str(tmp_path / "token")), desired)
    s.dashboard.on_tick(report(desired, live))
    yield s
    s.stop()


def _without_clock(doc: dict[str, object]) -> dict[str, object]:
    text = json.dumps(doc, sort_keys=True)
    text = re.sub(r'"bakeRemainingSeconds": \d+', '"bakeRemainingSeconds": 0', text)
    out = json.loads(text)
    out.pop("at")
    return dict(out)


def test_api_status_is_what_reconciler_status_prints(served: Served) -> None:
    code, headers, body = served.get("/api/status")
    assert code == 200 and headers["content-type"] == "application/json"
    served_doc = json.loads(body)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["status", str(REPO), "--live", str(LIVE), "-o", "json"]) == 0
    assert _without_clock(served_doc) == _without_clock(json.loads(out.getvalue()))
    _, live = fleet()
    tick = served.dashboard.views()
    assert tick is not None and tick.tick.report.plan is not None
    assert served_doc == status_json(tick.tick.report.plan, live)


def test_documents_and_their_etags(served: Served) -> None:
    for path in ("/api/fleet", "/api/rollout/api", "/api/history", "/api/meta",
                 "/api/cell/euw1-a-01", "/api/canary/api"):
        code, headers, body = served.get(path)
        assert code == 200, path
        json.loads(body)
    code, headers, body = served.get("/api/fleet", **{"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    fleet_doc = json.loads(gzip.decompress(body))
    assert "euw1-canary-01" in fleet_doc["cells"]["name"]
    code, _, _ = served.get("/api/fleet", **{"If-None-Match": headers["etag"]})
    assert code == 304
    assert served.get("/api/cell/nope")[0] == 404
    assert served.get("/api/nothing")[0] == 404
    # the same fleet a tick later: byte-identical documents, the page fetches nothing
    before = served.dashboard.views()
    desired, live = fleet()
    served.dashboard.on_tick(report(desired, live))
    after = served.dashboard.views()
    assert before is not None and after is not None and after.seq == before.seq + 1
    for name in before.bodies:
        assert before.bodies[name].etag == after.bodies[name].etag, name


def test_security_headers_and_no_inline_script(served: Served) -> None:
    code, headers, body = served.get("/")
    assert code == 200 and headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    html = body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert not re.search(r"\sstyle=|\son[a-z]+=", html), "an inline style or handler"
    for path in ("/static/app.js", "/static/app.css", "/api/fleet"):
        assert served.get(path)[1]["content-security-policy"] == CSP
    js = served.get("/static/app.js")[2].decode()
    assert "innerHTML" not in js and "eval(" not in js


def test_loopback_only_by_default(served: Served) -> None:
    # a page on another origin that rebinds its name to 127.0.0.1 sends its own Host
    assert served.get("/api/fleet", Host="evil.example:8080")[0] == 403
    assert served.get("/", Host="evil.example")[0] == 403
    assert served.get("/api/fleet", Host=f"localhost:{served.port}")[0] == 200
    web = DashboardWeb(served.dashboard, DashboardConfig(), "0.0.0.0:8080")
    refused = web.get("/api/fleet", {"host": "10.0.0.1:8080"}, "10.0.0.2")
    assert getattr(refused, "code", None) == 404 and web.off
    off = DashboardWeb(served.dashboard, DashboardConfig(enabled=False), "127.0.0.1:8080")
    assert getattr(off.get("/", {"host": "localhost"}, "127.0.0.1"), "code", None) == 404


def test_bearer_token_and_session_cookie(token_served: Served) -> None:
    s = token_served
    code, headers, _ = s.get("/api/fleet")
    assert code == 401 and headers["www-authenticate"].startswith("Bearer")
    assert s.get("/api/fleet", Authorization="Bearer wrong-token-0123456789")[0] == 401
    assert s.get("/api/events")[0] == 401
    assert s.get("/api/fleet", Authorization=f"Bearer {TOKEN}")[0] == 200
    assert s.get("/")[0] == 200  # the shell carries no data; it asks for the token
    req = urllib.request.Request(s.url("/api/session"), method="POST",
                                 headers={"Authorization": "Bearer nope-nope-nope-nope"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 401
    req = urllib.request.Request(s.url("/api/session"), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = cookie.split(";", 1)[0]
    assert s.get("/api/fleet", Cookie=session)[0] == 200
    assert s.get("/api/fleet", Cookie="reconciler_session=forged")[0] == 401


def _read_event(sock: socket.socket, buf: bytearray, timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while b"\n\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "stream closed"
        buf += chunk
    raw, _, rest = bytes(buf).partition(b"\n\n")
    buf[:] = rest
    fields: dict[str, str] = {}
    for line in raw.decode().splitlines():
        k, _, v = line.partition(": ")
        fields[k] = fields.get(k, "") + v
    return fields


def _open_stream(port: int) -> tuple[socket.socket, bytearray]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream"
                 b"\r\n\r\n")
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert b"text/event-stream" in head
    return sock, bytearray(rest)


def test_event_stream_after_every_tick_without_holding_workers(served: Served) -> None:
    streams = [_open_stream(served.port) for _ in range(20)]  # more than the 16 workers
    try:
        for sock, buf in streams:
            assert _read_event(sock, buf, 5).get("retry") == "2000"
            first = _read_event(sock, buf, 5)
            assert first["event"] == "tick"
        assert served.get("/healthz")[0] == 200  # no worker is held by a stream
        desired, live = fleet()
        sick = replace(live, services={**live.services, "euw1-a-02": {
            "api": ServiceLive(None, "Missing")}})
        start = time.monotonic()
        served.dashboard.on_tick(report(desired, sick))
        for sock, buf in streams:
            ev = _read_event(sock, buf, 5)
            assert ev["event"] == "tick"
            data = json.loads(ev["data"])
            assert "euw1-a-02" in data["cells"] and data["etags"]["fleet"]
        assert time.monotonic() - start < 2.0
    finally:
        for sock, _ in streams:
            sock.close()
    deadline = time.monotonic() + 5
    while served.dashboard.hub.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.dashboard.hub.clients == 0  # closed streams are noticed


def test_no_secret_in_any_document(served: Served) -> None:
    secret = "s3cr3t-db-password-in-a-message"
    register_secret(secret)
    desired, live = fleet()
    leaky = replace(live, services={**live.services, "euw1-a-01": {
        "api": ServiceLive(None, "Degraded", message=f"connect failed: password={secret}")}})
    served.dashboard.on_tick(report(desired, leaky))
    for path in ("/api/status", "/api/fleet", "/api/rollout/api", "/api/cell/euw1-a-01",
                 "/api/history", "/api/meta"):
        body = served.get(path)[2].decode()
        assert secret not in body, path
    cell = json.loads(served.get("/api/cell/euw1-a-01")[2])
    assert "***" in cell["services"]["api"]["message"]
    for ref in desired.cells["euw1-a-01"].databases:
        for name in (ref.secret_env, ref.secret_file):
            if name:
                assert name not in served.get("/api/cell/euw1-a-01")[2].decode()


def test_trusted_proxy_and_token_file_checks(served: Served, tmp_path: Path) -> None:
    from reconciler.daemon.config import ConfigError, load_config

    cfg = DashboardConfig(trusted_proxies=("10.0.0.5/32",))
    web = DashboardWeb(served.dashboard, cfg, "0.0.0.0:8080")
    assert not web.off
    ok = web.get("/api/fleet", {"host": "fleet.example", "x-forwarded-user": "alice"},
                 "10.0.0.5")
    assert getattr(ok, "code", None) == 200
    for headers, peer in (({"host": "x", "x-forwarded-user": "alice"}, "10.0.0.6"),
                          ({"host": "x"}, "10.0.0.5")):
        assert getattr(web.get("/api/fleet", headers, peer), "code", None) == 401
    with pytest.raises(ConfigError, match="token_file"):
        DashboardWeb(served.dashboard, DashboardConfig(token_file=str(tmp_path / "none")),
                     "0.0.0.0:8080")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ConfigError, match="16 characters"):
        DashboardWeb(served.dashboard, DashboardConfig(token_file=str(tmp_path / "short")),
                     "0.0.0.0:8080")
    conf = tmp_path / "config.yaml"
    conf.write_text("dashboard:\n  token_file: /etc/t\n  trusted_proxies: [10.0.0.0/8]\n"
                    "  commit_url: https://git.example/c/{sha}\n  canary: {window: 5m}\n")
    d = load_config(str(conf)).dashboard
    assert (d.token_file, d.trusted_proxies, d.canary_window) == ("/etc/t", ("10.0.0.0/8",),
                                                                  300)
    for bad in ("dashboard: {nope: 1}\n", "dashboard: {commit_url: 'javascript:x{sha}'}\n",
                "dashboard: {trusted_proxies: [not-an-address]}\n"):
        conf.write_text(bad)
        with pytest.raises(ConfigError):
            load_config(str(conf))
