"""A real Prometheus server on loopback scraping a test exporter whose error rates we set.

For tests and the demo. ``TestExporter`` serves ``http_requests_total{cell,code}``
counters that grow at a fixed request rate with an error fraction per cell, and a
``http_request_duration_seconds`` histogram whose latency per cell is settable too (the
dashboard's canary panel reads both), at any time; ``PrometheusServer`` runs Debian's
``prometheus`` binary against it with a 1 s scrape interval in a temporary directory.

Per version (for baseline analysis): once a cell's version is known (``set_version``,
e.g. followed from the real Deployment), the same requests are also counted as
``app_requests_total{cell,version,pods,code}`` with an ``app_request_duration_seconds``
histogram ``{cell,version,pods}``; ``set_version_error_rate`` / ``set_version_latency``
make every cell on a version behave alike and ``set_version_traffic`` scales (or stops)
its requests. ``pods`` names the pod group (``main`` for a plain rolling Deployment).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REQUESTS_PER_SECOND = 100.0
#: The latency histogram's bucket bounds (seconds) and a cell's latency until set.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DEFAULT_LATENCY = 0.02


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ready(url: str) -> bool:
    """Prometheus answers ``/-/ready`` with 200."""
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1.0) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


class _QuietServer(ThreadingHTTPServer):
    """The exporter's server: a scrape Prometheus gave up on (its timeout, under load)
    closes the connection mid-answer; that is the scraper's choice, not an error to
    print a traceback for. Any other error is reported as usual."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True)
class Group:
    """Pods of one version in a cell taking ``share`` of its requests (``served``: their
    answers reach the clients; False: mirrored copies)."""

    version: str
    pods: str
    share: float
    served: bool = True


class TestExporter:
    """Per-cell request counters; ``set_error_rate(cell, 0.3)`` makes 30% of them 5xx."""

    __test__ = False  # not a pytest test class

    def __init__(self, cells: list[str]) -> None:
        self._lock = threading.Lock()
        self._rates = dict.fromkeys(cells, 0.0)
        self._ok = dict.fromkeys(cells, 0.0)
        self._err = dict.fromkeys(cells, 0.0)
        self._latency = dict.fromkeys(cells, DEFAULT_LATENCY)
        self._seconds = dict.fromkeys(cells, 0.0)
        self._fast: dict[tuple[str, float], float] = {}  # (cell, bucket bound) -> requests
        self._version: dict[str, tuple[str, str] | None] = dict.fromkeys(cells)
        self._v_rate: dict[str, float] = {}
        self._v_latency: dict[str, float] = {}
        self._v_traffic: dict[str, float] = {}
        #: (cell, version, pods) -> [ok, errors, seconds, *requests at most each bucket]
        self._by_version: dict[tuple[str, str, str], list[float]] = {}
        #: cell -> pod groups splitting its requests (``set_groups``), else None
        self._groups: dict[str, tuple[Group, ...]] = {}
        self._last = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def set_error_rate(self, cell: str, fraction: float) -> None:
        with self._lock:
            self._advance()
            self._rates[cell] = fraction

    def set_version(self, cell: str, version: str | None, pods: str = "main") -> None:
        """``cell`` runs ``version`` (None: nothing) from now on."""
        with self._lock:
            self._advance()
            self._version[cell] = (version, pods) if version else None

    def set_groups(self, cell: str, groups: Sequence[Group] | None) -> None:
        """``cell``'s requests split between pod groups from now on (a canary's stable
        and canary pods by the HTTPRoute's weights; a shadow's mirrored copies, which
        the cell's own counters do not see); None: one group again (``set_version``)."""
        with self._lock:
            self._advance()
            if groups:
                self._groups[cell] = tuple(groups)
            else:
                self._groups.pop(cell, None)

    def set_version_error_rate(self, version: str, fraction: float | None) -> None:
        """Every cell on ``version`` fails ``fraction`` of its requests (None: the cell's
        own rate again)."""
        with self._lock:
            self._advance()
            self._set(self._v_rate, version, fraction)

    def set_version_latency(self, version: str, seconds: float | None) -> None:
        """Every request of a cell on ``version`` takes ``seconds`` (None: the cell's)."""
        with self._lock:
            self._advance()
            self._set(self._v_latency, version, seconds)

    def set_version_traffic(self, version: str, factor: float | None) -> None:
        """Cells on ``version`` serve ``factor`` times the usual requests (0: none)."""
        with self._lock:
            self._advance()
            self._set(self._v_traffic, version, factor)

    @staticmethod
    def _set(table: dict[str, float], version: str, value: float | None) -> None:
        if value is None:
            table.pop(version, None)
        else:
            table[version] = value

    def _effective(self, cell: str) -> tuple[float, float, float]:
        """(requests per second, error fraction, latency) of ``cell`` now."""
        current = self._version.get(cell)
        v = current[0] if current else None
        if v is None:
            return REQUESTS_PER_SECOND, self._rates[cell], self._latency[cell]
        return (REQUESTS_PER_SECOND * self._v_traffic.get(v, 1.0),
                self._v_rate.get(v, self._rates[cell]), self._v_latency.get(v, self._latency[cell]))

    def set_latency(self, cell: str, seconds: float) -> None:
        """Every request of ``cell`` from now on takes ``seconds``."""
        with self._lock:
            self._advance()
            self._latency[cell] = seconds

    def _advance_groups(self, cell: str, dt: float) -> None:
        """One cell split between pod groups: each group's own rate, errors and latency
        (its version's), the cell's counters summing the served groups."""
        for g in self._groups[cell]:
            rps = REQUESTS_PER_SECOND * self._v_traffic.get(g.version, 1.0)
            frac = self._v_rate.get(g.version, self._rates[cell])
            latency = self._v_latency.get(g.version, self._latency[cell])
            n = rps * dt * g.share
            if g.served:
                self._err[cell] += n * frac
                self._ok[cell] += n * (1 - frac)
                self._seconds[cell] += n * latency
                for le in BUCKETS:
                    if latency <= le:
                        key = (cell, le)
                        self._fast[key] = self._fast.get(key, 0.0) + n
            row = self._by_version.setdefault((cell, g.version, g.pods),
                                              [0.0] * (3 + len(BUCKETS)))
            row[0] += n * (1 - frac)
            row[1] += n * frac
            row[2] += n * latency
            for i, le in enumerate(BUCKETS):
                row[3 + i] += n if latency <= le else 0.0

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        for cell in self._rates:
            if cell in self._groups:
                self._advance_groups(cell, dt)
                continue
            rps, frac, latency = self._effective(cell)
            n = rps * dt
            self._err[cell] += n * frac
            self._ok[cell] += n * (1 - frac)
            self._seconds[cell] += n * latency
            for le in BUCKETS:
                if latency <= le:
                    key = (cell, le)
                    self._fast[key] = self._fast.get(key, 0.0) + n
            current = self._version.get(cell)
            if current is not None:
                row = self._by_version.setdefault((cell, *current),
                                                  [0.0] * (3 + len(BUCKETS)))
                row[0] += n * (1 - frac)
                row[1] += n * frac
                row[2] += n * latency
                for i, le in enumerate(BUCKETS):
                    row[3 + i] += n if latency <= le else 0.0

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = ["# TYPE http_requests_total counter"]
            for cell in sorted(self._rates):
                for code, value in (("200", self._ok[cell]), ("500", self._err[cell])):
                    lines.append(f'http_requests_total{{cell="{cell}",code="{code}"}} '
                                 f"{value:.3f}")
            lines.append("# TYPE http_request_duration_seconds histogram")
            for cell in sorted(self._rates):
                total = self._ok[cell] + self._err[cell]
                for le in BUCKETS:
                    lines.append(f'http_request_duration_seconds_bucket{{cell="{cell}",'
                                 f'le="{le}"}} {self._below(cell, le):.3f}')
                lines.append(f'http_request_duration_seconds_bucket{{cell="{cell}",'
                             f'le="+Inf"}} {total:.3f}')
                lines.append(f'http_request_duration_seconds_sum{{cell="{cell}"}} '
                             f"{self._seconds[cell]:.3f}")
                lines.append(f'http_request_duration_seconds_count{{cell="{cell}"}} '
                             f"{total:.3f}")
            lines += self._render_versions()
            return "\n".join(lines) + "\n"

    def _render_versions(self) -> list[str]:
        """The per-version families: each cell's current version and pod group only."""
        rows = sorted({(cell, *v) for cell, v in self._version.items()
                       if v is not None and cell not in self._groups} |
                      {(cell, g.version, g.pods) for cell, gs in self._groups.items()
                       for g in gs})
        req = ["# TYPE app_requests_total counter"]
        hist = ["# TYPE app_request_duration_seconds histogram"]
        for cell, version, pods in rows:
            row = self._by_version.get((cell, version, pods), [0.0] * (3 + len(BUCKETS)))
            labels = f'cell="{cell}",version="{version}",pods="{pods}"'
            req.append(f'app_requests_total{{{labels},code="200"}} {row[0]:.3f}')
            req.append(f'app_requests_total{{{labels},code="500"}} {row[1]:.3f}')
            for i, le in enumerate(BUCKETS):
                hist.append(f'app_request_duration_seconds_bucket{{{labels},le="{le}"}} '
                            f"{row[3 + i]:.3f}")
            total = row[0] + row[1]
            hist.append(f'app_request_duration_seconds_bucket{{{labels},le="+Inf"}} '
                        f"{total:.3f}")
            hist.append(f"app_request_duration_seconds_sum{{{labels}}} {row[2]:.3f}")
            hist.append(f"app_request_duration_seconds_count{{{labels}}} {total:.3f}")
        return req + hist

    def _below(self, cell: str, le: float) -> float:
        """Requests of ``cell`` so far that took at most ``le`` seconds."""
        return self._fast.get((cell, le), 0.0)

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def prometheus_binary() -> str | None:
    """The prometheus binary: $PROMETHEUS_BIN, PATH, or Debian's /usr/bin/prometheus."""
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")


class PrometheusServer:
    """Debian's prometheus on a free loopback port, scraping ``targets`` every second."""

    def __init__(self, targets: list[str], binary: str | None = None) -> None:
        found = binary or prometheus_binary()
        if not found:
            raise RuntimeError("prometheus not found: apt-get install prometheus "
                               "(or set PROMETHEUS_BIN)")
        self.binary = found
        self.targets = targets
        self.dir = Path(tempfile.mkdtemp(prefix="reconciler-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        targets = ", ".join(f'"{t}"' for t in self.targets)
        cfg = self.dir / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       "scrape_configs:\n  - job_name: test\n"
                       f"    static_configs:\n      - targets: [{targets}]\n")
        return cfg

    def start(self, timeout: float = 30.0) -> None:
        cfg = self._config()
        log = (self.dir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={self.dir / 'data'}", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.dir / "prometheus.log").read_text()[-2000:]
                raise RuntimeError(f"prometheus exited: {tail}")
            if _ready(self.url):
                return
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready in time")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def prometheus_with_exporter(
        cells: list[str]) -> Iterator[tuple[PrometheusServer, TestExporter]]:
    """A running exporter for ``cells`` and a Prometheus scraping it; both stopped after."""
    exporter = TestExporter(cells)
    exporter.start()
    server = PrometheusServer([f"127.0.0.1:{exporter.port}"])
    try:
        server.start()
        yield server, exporter
    finally:
        server.stop()
        exporter.stop()
