"""The dashboard's HTTP side: who may look, which path serves what, and the headers.

Owns: access (open to loopback clients on a loopback listener, checked against the
``Host`` header so a web page cannot rebind a name to it; a bearer token from a file,
or its session cookie, or a trusted proxy's user header otherwise; off when listening
elsewhere with none of them), routing of ``/``, ``/static/…`` and ``/api/…``, the
strict Content-Security-Policy (scripts and styles from this origin only, no inline
script, nothing framed) and the other security headers of every answer. The page shell
and its assets carry no data and need no token (the page asks for one); every
``/api/`` path does. Read-only: the only POST sets the session cookie for a valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote

from reconciler.daemon.config import ConfigError, DashboardConfig
from reconciler.daemon.dashboard.sse import event
from reconciler.daemon.dashboard.state import Body, Dashboard
from reconciler.daemon.logs import register_secret

log = logging.getLogger("reconciler.dashboard")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
COOKIE = "reconciler_session"
SESSION_SECONDS = 12 * 3600
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
          ".txt": "text/plain; charset=utf-8"}
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Response:
    """An answer: code, body (and its gzipped form), content type, extra headers."""

    code: int
    body: bytes = b""
    ctype: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    gz: bytes | None = None


@dataclass(frozen=True)
class Stream:
    """Start an event stream: the head is sent, then the socket goes to the hub."""

    first: bytes


def _text(code: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(code, (text + "\n").encode(), headers=tuple(headers))


def is_loopback(host: str) -> bool:
    """``host`` (a name or an address) is the loopback interface."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """``Host`` without its port (``[::1]:8080`` → ``::1``)."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _static() -> dict[str, tuple[bytes, str, str]]:
    """The packaged assets: path → (bytes, content type, etag)."""
    out = {}
    root = resources.files("reconciler.daemon.dashboard") / "static"
    for item in root.iterdir():
        if not item.is_file() or item.name.startswith("."):
            continue
        data = item.read_bytes()
        ext = "." + item.name.rsplit(".", 1)[-1]
        out[item.name] = (data, _TYPES.get(ext, "application/octet-stream"),
                          hashlib.sha256(data).hexdigest()[:20])
    return out


class TokenFile:
    """The bearer token in a file, read again when the file changes (rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime = -1.0
        self._checked = 0.0
        self._digest = b""
        self.session = ""
        self._read()

    def _read(self) -> None:
        try:
            st = os.stat(self.path)
            if st.st_mtime == self._mtime:
                return
            with open(self.path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            if self._mtime < 0:
                raise ConfigError(f"dashboard.token_file: {self.path}: {e.strerror}") from None
            log.warning("dashboard: token file unreadable, keeping the last token: %s",
                        e.strerror)
            return
        if len(token) < 16:
            raise ConfigError(f"dashboard.token_file: {self.path}: the token must be at "
                              f"least 16 characters")
        register_secret(token)
        self._mtime = st.st_mtime
        self._digest = hashlib.sha256(token.encode()).digest()
        self.session = hmac.new(token.encode(), b"reconciler-dashboard-session",
                                hashlib.sha256).hexdigest()

    def refresh(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._checked < 1.0:
                return
            self._checked = now
            try:
                self._read()
            except ConfigError as e:
                log.warning("dashboard: %s (keeping the last token)", e)

    def matches(self, token: str) -> bool:
        self.refresh()
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)

    def session_ok(self, value: str) -> bool:
        self.refresh()
        return bool(self.session) and hmac.compare_digest(value.encode(),
                                                          self.session.encode())


def _cookie(headers: Mapping[str, str], name: str) -> str:
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return ""


class DashboardWeb:
    """Routing and access for the dashboard's paths on the daemon's listener."""

    def __init__(self, dashboard: Dashboard, cfg: DashboardConfig, listen: str) -> None:
        self.dashboard, self.cfg = dashboard, cfg
        host = listen.rpartition(":")[0].strip("[]") or "127.0.0.1"
        self.token = TokenFile(cfg.token_file) if cfg.enabled and cfg.token_file else None
        self.proxies = tuple(ipaddress.ip_network(p, strict=False)
                             for p in cfg.trusted_proxies)
        self.local_only = is_loopback(host) and self.token is None and not self.proxies
        self.off = ""
        if not cfg.enabled:
            self.off = "dashboard disabled (dashboard.enabled: false)"
        elif not is_loopback(host) and self.token is None and not self.proxies:
            self.off = ("dashboard off: listening on a non-loopback address without "
                        "dashboard.token_file or dashboard.trusted_proxies")
            log.warning("%s", self.off)
        self.assets = _static()

    @staticmethod
    def handles(path: str) -> bool:
        return path == "/" or path.startswith("/static/") or path.startswith("/api/") or \
            path == "/favicon.ico"

    # -- access -----------------------------------------------------------------------
    def _allowed(self, headers: Mapping[str, str], peer: str) -> Response | None:
        """None when the request may see data; else the refusal."""
        if self.local_only:
            if _host_name(headers.get("host", "")) not in _LOOPBACK_NAMES and \
                    not _host_name(headers.get("host", "")).endswith(".localhost"):
                return _text(403, "forbidden: not a loopback Host")
            return None
        auth = headers.get("authorization", "")
        if self.token is not None:
            if auth[:7].lower() == "bearer " and self.token.matches(auth[7:].strip()):
                return None
            session = _cookie(headers, COOKIE)
            if session and self.token.session_ok(session):
                return None
        if self.proxies and headers.get(self.cfg.user_header.lower(), "").strip():
            try:
                addr = ipaddress.ip_address(peer)
            except ValueError:
                addr = None
            if addr is not None and any(addr in net for net in self.proxies):
                return None
        return _text(401, "unauthorized", ("WWW-Authenticate", 'Bearer realm="reconciler"'))

    # -- routing ----------------------------------------------------------------------
    def get(self, path: str, headers: Mapping[str, str], peer: str) -> Response | Stream:
        """The answer to a GET of a dashboard path (``headers`` lower-cased)."""
        if self.off:
            return _text(404, self.off)
        if path == "/" or path.startswith("/static/") or path == "/favicon.ico":
            if self.local_only:
                refused = self._allowed(headers, peer)
                if refused is not None:
                    return refused
            return self._asset("index.html" if path == "/" else
                               "favicon.svg" if path == "/favicon.ico" else path[8:],
                               headers)
        refused = self._allowed(headers, peer)
        if refused is not None:
            return refused
        name = unquote(path[5:]).strip("/")
        if name == "events":
            return self._stream()
        body = self.dashboard.body(name)
        if body is None:
            return _text(404, "not found")
        return self._json(body, headers)

    def post(self, path: str, headers: Mapping[str, str], peer: str) -> Response:
        """``POST /api/session`` with a valid bearer token sets the session cookie (an
        event stream cannot send a header; the cookie is HttpOnly and SameSite)."""
        if self.off:
            return _text(404, self.off)
        if path != "/api/session":
            return _text(404, "not found")
        if self.token is None:
            return _text(404, "no token configured")
        refused = self._allowed({k: v for k, v in headers.items() if k != "cookie"}, peer)
        if refused is not None:
            return refused
        secure = "; Secure" if headers.get("x-forwarded-proto", "") == "https" else ""
        cookie = (f"{COOKIE}={self.token.session}; Path=/; HttpOnly; SameSite=Strict; "
                  f"Max-Age={SESSION_SECONDS}{secure}")
        return Response(204, b"", headers=(("Set-Cookie", cookie),))

    def _asset(self, name: str, headers: Mapping[str, str]) -> Response:
        found = self.assets.get(name)
        if found is None:
            return _text(404, "not found")
        data, ctype, etag = found
        tag = f'"{etag}"'
        cache = (("Cache-Control", "no-cache"), ("ETag", tag))
        if headers.get("if-none-match", "") == tag:
            return Response(304, b"", ctype, cache)
        return Response(200, data, ctype, cache)

    @staticmethod
    def _json(body: Body, headers: Mapping[str, str]) -> Response:
        tag = f'"{body.etag}"'
        extra = (("Cache-Control", "no-store"), ("ETag", tag), ("Vary", "Accept-Encoding"))
        if headers.get("if-none-match", "") == tag:
            return Response(304, b"", "application/json", extra)
        gz = body.gz if "gzip" in headers.get("accept-encoding", "") else None
        return Response(200, body.raw, "application/json", extra, gz)

    def _stream(self) -> Response | Stream:
        if not self.dashboard.hub.room():
            return _text(503, "too many event streams", ("Retry-After", "5"))
        d = self.dashboard
        views = d.views()
        first = b"retry: 2000\n\n"
        if views is not None:
            first += event("tick", _dumps(d.tick_event(views, None)), views.seq)
        else:
            first += event("hello", _dumps(d.meta()))
        return Stream(first)


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))
