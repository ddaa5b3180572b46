"""Benchmark: the dashboard at fleet scale in Debian's headless Chromium.

Usage: python bench/dashboard.py [--cells 10000] [--repeat 5] [--updates 10]
Prints one JSON line. The fleet is bench/plan_scale.py's (N cells x 3 services, 4 waves,
the canary wave mid-rollout), planned once; its tick reports are fed to the daemon's
real dashboard (``Dashboard.on_tick``, as the daemon's tick listener is called) behind
the daemon's real HTTP server on loopback, and a real Chromium loads the page.

Measured (targets from issue #16 and DESIGN.md section 6):
- first render: navigation start to the fleet map drawn (``window.__dashboard
  .firstRender``), the views already built (warm) and right after a tick (cold: the
  request builds them) — target <= 1.5 s;
- SSE latency: the tick listener called -> the ``tick`` event in the page (and -> the
  map re-drawn with the change) — target <= 1 s;
- the API's size: ``/api/fleet`` raw and gzipped (what the page loads) — target <= 2 MB;
- the daemon-side cost of building the views of one tick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plan_scale import SERVICES, live, repo
from reconciler.core.live import LiveSnapshot, ServiceLive
from reconciler.core.loader import load_repository
from reconciler.core.planner import plan
from reconciler.core.versions import Version
from reconciler.daemon.config import DashboardConfig
from reconciler.daemon.dashboard.state import Dashboard, DashboardSources
from reconciler.daemon.dashboard.web import DashboardWeb
from reconciler.daemon.httpserver import Endpoints, HttpServer
from reconciler.daemon.metrics import Metrics
from reconciler.engine.tick import TickReport
from tests.core.support import DictSource
from tests.integration.dashboard.browser import chromium


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"min": round(xs[0], 3), "median": round(xs[len(xs) // 2], 3),
            "max": round(xs[-1], 3)}


def _size(url: str, gz: bool) -> int:
    headers = {"Accept-Encoding": "gzip"} if gz else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
        return len(r.read())


def _changed(snap: LiveSnapshot, k: int) -> LiveSnapshot:
    """``snap`` with one more cell past the canaries moved to the new version."""
    cell = f"cell-{len(snap.services) // 100 + 1 + k:05d}"
    services = dict(snap.services)
    services[cell] = {s: ServiceLive(Version.parse("2.0.0"), "Progressing",
                                     Version.parse("1.9.0")) for s in SERVICES}
    return replace(snap, services=services)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--updates", type=int, default=10)
    args = ap.parse_args()
    loaded = load_repository(DictSource(repo(args.cells)))
    desired = loaded.desired
    assert desired is not None, loaded.errors[:3]
    snap = live(args.cells)
    now = datetime.now(UTC)
    reports = [TickReport(desired.revision, (), plan(desired, s, now), (), live=s)
               for s in [snap] + [_changed(snap, k) for k in range(args.updates)]]

    cfg = DashboardConfig()
    dashboard = Dashboard(cfg, 10, DashboardSources(), lambda: desired, lambda: (True, "ready"))
    server = HttpServer("127.0.0.1:0", Endpoints(
        Metrics(), lambda: (True, "ready"), lambda: None, "main",
        dashboard=DashboardWeb(dashboard, cfg, "127.0.0.1:0")))
    base = f"http://127.0.0.1:{server.port}"
    dashboard.start()
    server.start()
    out: dict[str, object] = {"cells": args.cells, "services": len(SERVICES)}
    try:
        builds = []
        for r in reports[:3]:
            dashboard.on_tick(r)
            t = time.perf_counter()
            dashboard.views()
            builds.append(time.perf_counter() - t)
        out["views_build_s"] = _stats(builds)
        out["api_fleet_bytes"] = _size(f"{base}/api/fleet", False)
        out["api_fleet_gzip_bytes"] = _size(f"{base}/api/fleet", True)
        out["api_status_bytes"] = _size(f"{base}/api/status", False)
        out["api_status_gzip_bytes"] = _size(f"{base}/api/status", True)
        out["api_rollout_bytes"] = _size(f"{base}/api/rollout/api", False)
        with chromium() as driver:
            warm: list[float] = []
            cold: list[float] = []
            for k in range(args.repeat):
                if k % 2:  # a new tick: this load's requests build the views
                    dashboard.on_tick(reports[0])
                driver.get(f"{base}/")
                ms = _wait(driver, "return window.__dashboard.firstRender", 30)
                (cold if k % 2 else warm).append(ms / 1000)
            out["first_render_warm_s"] = _stats(warm)
            out["first_render_after_tick_s"] = _stats(cold)
            driver.get(f"{base}/")
            _wait(driver, "return window.__dashboard.firstRender", 30)
            _wait(driver, "return document.getElementById('live').textContent === 'live'", 10)
            tiles = driver.execute_script("return document.querySelectorAll('.tile').length")
            out["tile_nodes_in_dom"] = tiles
            events, renders = [], []
            for k in range(args.updates):
                seen = driver.execute_script("return window.__dashboard.ticks.length")
                drawn = driver.execute_script("return window.__dashboard.renders")
                t0 = time.time()
                dashboard.on_tick(reports[1 + k])
                received = _wait(driver, "const t = window.__dashboard.ticks; return "
                                 f"t.length > {seen} ? t[t.length - 1].received : null", 10)
                _wait(driver, f"return window.__dashboard.renders > {drawn}", 10)
                redrawn = time.time()
                events.append(received / 1000 - t0)
                renders.append(redrawn - t0)
                time.sleep(0.3)
            out["sse_tick_to_event_s"] = _stats(events)
            out["sse_tick_to_map_redrawn_s"] = _stats(renders)
    finally:
        server.stop()
        dashboard.stop()
    print(json.dumps(out))


def _wait(driver: object, script: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = driver.execute_script(script)  # type: ignore[attr-defined]
        if got:
            return float(got)
        time.sleep(0.005)
    raise TimeoutError(script)


if __name__ == "__main__":
    main()
