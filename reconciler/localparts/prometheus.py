"""A real Prometheus server on loopback scraping a test exporter whose error rates we set.

For tests and the demo. ``TestExporter`` serves ``http_requests_total{cell,code}``
counters that grow at a fixed request rate with an error fraction per cell, and a
``http_request_duration_seconds`` histogram whose latency per cell is settable too (the
dashboard's canary panel reads both), at any time; ``PrometheusServer`` runs Debian's
``prometheus`` binary against it with a 1 s scrape interval in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
        self._last = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def set_error_rate(self, cell: str, fraction: float) -> None:
        with self._lock:
            self._advance()
            self._rates[cell] = fraction

    def set_latency(self, cell: str, seconds: float) -> None:
        """Every request of ``cell`` from now on takes ``seconds``."""
        with self._lock:
            self._advance()
            self._latency[cell] = seconds

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        for cell, frac in self._rates.items():
            self._err[cell] += REQUESTS_PER_SECOND * dt * frac
            self._ok[cell] += REQUESTS_PER_SECOND * dt * (1 - frac)
            self._seconds[cell] += REQUESTS_PER_SECOND * dt * self._latency[cell]
            for le in BUCKETS:
                if self._latency[cell] <= le:
                    key = (cell, le)
                    self._fast[key] = self._fast.get(key, 0.0) + REQUESTS_PER_SECOND * dt

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
            return "\n".join(lines) + "\n"

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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
