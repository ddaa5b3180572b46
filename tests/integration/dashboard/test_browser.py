"""The dashboard in a real headless Chromium, against the real daemon (built by
``reconciler.compose`` as ``reconciler run`` builds it, running its own scheduler and
HTTP listener) following the e2e fleet on the local control plane, PostgreSQL and
Prometheus with the test exporter.

One story, in order: a request without the token gets 401 and the page asks for it; the
fleet map shows every cell installed; while idle the page sends no request (only the
event stream stays open) although ticks keep arriving; a bump puts the canary on the new
version in the map, the rollout shows stage 1/3 with a bake countdown that goes down,
the canary panel compares canary and baseline from Prometheus and warns as the canary's
error rate nears the alarm's threshold; the stage advances to the end; a second bump
breaches the alarm: the daemon rolls the canary back and commits the revert, and the
page's history shows that rollback (alarm, value, threshold, commit) within 2 s of the
commit; a daemon that stops ticking gets the stale banner. No secret is in any page or
document. Screenshots of the fleet map and the rollout go to docs/ when
``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pygit2
import pytest

from reconciler.compose.daemon import build_daemon
from reconciler.daemon.config import (
    DEFAULT_CANARY_QUERIES,
    DaemonConfig,
    DashboardConfig,
    LeaderConfig,
    RepoConfig,
)
from reconciler.daemon.service import Daemon
from reconciler.daemon.ticks import TickWatch, settled
from reconciler.testing.gitserver import free_port
from tests.e2e.conftest import CELLS, Fleet
from tests.integration.dashboard.browser import chromium, console_errors, requests_made

pytestmark = [pytest.mark.e2e, pytest.mark.k8s, pytest.mark.alarms]

DOCS = Path(__file__).resolve().parents[3] / "docs"
TOKEN = "browser-test-token-7f3a9c1e2b"
BOT = ("reconciler", "reconciler@e2e.example")
T = TypeVar("T")


def until(fn: Callable[[], T], timeout: float, what: str, every: float = 0.1) -> T:
    """``fn()`` once it is truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            got = fn()
        except Exception as e:  # a page mid-render: try again
            got, last = None, e
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last})")


@contextmanager
def running_daemon(fleet: Fleet, tmp: Path) -> Iterator[tuple[Daemon, TickWatch, int]]:
    """``reconciler run`` in this process: its scheduler, its listener, a token file."""
    (tmp / "token").write_text(TOKEN + "\n")
    fast = {k: v.replace("[1m]", "[5s]") for k, v in DEFAULT_CANARY_QUERIES.items()}
    port = free_port()
    cfg = DaemonConfig(
        repo=RepoConfig(url=f"file://{fleet.remote}", branch="main"),
        listen=f"127.0.0.1:{port}", state_dir=str(fleet.state),
        prometheus_url=fleet.prom.url, poll_interval=1, reconcile_interval=1,
        drift_interval=0, git_author=BOT, leader=LeaderConfig(kind="none"),
        terraform_cli_config=str(fleet.terraform_cli_config),
        dashboard=DashboardConfig(token_file=str(tmp / "token"), canary_window=60,
                                  canary_queries=tuple(fast.items())))
    daemon = build_daemon(cfg)
    ticks = TickWatch()
    daemon.tick_listeners.append(ticks)
    daemon.start()
    try:
        yield daemon, ticks, port
    finally:
        daemon.shutdown()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _tiles(driver: Any) -> dict[str, str]:
    """cell → the version its tile shows."""
    got = driver.execute_script(
        "return [...document.querySelectorAll('#map .tile')].map("
        "t => [t.dataset.cell, t.dataset.version])")
    return dict(got)


def _text(driver: Any, css: str) -> str:
    return str(driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css))


def _quiet(driver: Any) -> bool:
    """The last three tick events named the same documents the page shows (status
    written, settled; ``/api/status`` says when it was made, so it changes every tick)."""
    tags = driver.execute_script(
        "return window.__dashboard.ticks.slice(-3).map(t => JSON.stringify("
        "Object.entries(t.etags).filter(([k]) => k !== 'status')))")
    return len(tags) == 3 and len(set(tags)) == 1


def _ours(urls: list[str], port: int) -> list[str]:
    return [u for u in urls if f"127.0.0.1:{port}" in u or "localhost" in u]


def _screenshot(driver: Any, name: str, tmp: Path) -> None:
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp
    driver.save_screenshot(str(target / name))


def _branch_head(cache: Path) -> tuple[str, str]:
    repo = pygit2.Repository(str(cache))
    commit = repo[repo.references["refs/heads/main"].target]
    assert isinstance(commit, pygit2.Commit)
    return str(commit.id), str(commit.message)


def test_dashboard_in_chromium_follows_a_rollout_and_a_rollback(fleet: Fleet,
                                                                tmp_path: Path) -> None:
    with running_daemon(fleet, tmp_path) as (daemon, ticks, port), chromium() as driver:
        base = f"http://127.0.0.1:{port}"
        ticks.wait(settled, 300, since=0)
        # -- access: the API needs the token; the page asks for it -------------------
        assert _get(f"{base}/api/fleet")[0] == 401
        assert _get(f"{base}/api/events")[0] == 401
        assert _get(f"{base}/api/fleet", "not-the-token-at-all")[0] == 401
        assert _get(f"{base}/api/fleet", TOKEN)[0] == 200
        driver.get(base + "/")
        until(lambda: driver.find_element("id", "token").is_displayed(), 10, "the sign-in")
        driver.find_element("id", "token").send_keys(TOKEN)
        driver.find_element("css selector", "#login-form button").click()
        until(lambda: _tiles(driver) == dict.fromkeys(CELLS, "1.0.0"), 20,
              "every cell at 1.0.0 on the map")
        until(lambda: _text(driver, "#live") == "live", 10, "the event stream open")

        # -- idle: ticks arrive, the page requests nothing but its open stream ------------
        until(lambda: _quiet(driver), 30, "three ticks in a row with the same documents")
        requests_made(driver)  # drop what loading the page sent
        before = driver.execute_script("return window.__dashboard.ticks.length")
        time.sleep(5)
        after = driver.execute_script("return window.__dashboard.ticks.length")
        assert after - before >= 3, "tick events kept arriving"
        idle = _ours(requests_made(driver), port)
        changed = driver.execute_script(
            "return window.__dashboard.ticks.slice(-8).map(t => JSON.stringify(t.etags))")
        assert idle == [], (idle, changed)

        # -- a rollout: the canary on the new version, stage and time left advance --------
        fleet.exporter.set_error_rate("e2e-c1", 0.042)  # 84% of the 0.05 threshold
        fleet.exporter.set_latency("e2e-c1", 0.2)
        fleet.set_version("1.1.0", canary_bake="15s")
        until(lambda: _tiles(driver).get("e2e-c1") == "1.1.0", 60,
              "the canary tile on 1.1.0")
        assert {c: v for c, v in _tiles(driver).items() if c != "e2e-c1"} == \
            dict.fromkeys(CELLS[1:], "1.0.0")
        until(lambda: _text(driver, "#stage") == "stage 1/3", 20, "stage 1/3")
        left = until(lambda: _text(driver, "#bake-canary"), 30, "the bake countdown")
        time.sleep(2.2)
        later = _text(driver, "#bake-canary")
        assert left.endswith(" left") and later.endswith(" left"), (left, later)
        assert int(later.split("s")[0]) < int(left.split("s")[0]), (left, later)
        until(lambda: driver.find_elements("css selector", "#canary-warning"), 20,
              "the canary panel's warning")
        until(lambda: "near" in _text(driver, "#canary-alarms [data-alarm='error-rate']"), 20,
              "the error-rate alarm near its threshold")
        until(lambda: "⚠" in _text(driver, "#canary [data-metric='latency']"), 20,
              "the latency delta flagged")
        assert driver.find_elements("css selector", "#canary [data-metric='errors'] svg path")
        _screenshot(driver, "dashboard-fleet.png", tmp_path)
        driver.find_element("css selector", ".col-side").screenshot(
            str((DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path) /
                "dashboard-rollout.png"))
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
        fleet.exporter.set_latency("e2e-c1", 0.02)
        until(lambda: _text(driver, "#stage") in ("stage 2/3", "stage 3/3", "done"), 60,
              "the stage past the canary")
        until(lambda: _text(driver, "#stage") == "done", 120, "the rollout done")
        assert _tiles(driver) == dict.fromkeys(CELLS, "1.1.0")
        history = _text(driver, "#recent-list")
        assert "shop 1.0.0 → 1.1.0" in history and "done in wave" in history

        # -- a breach: rolled back, the revert commit in history within 2 s ---------------
        fleet.set_version("1.2.0", canary_bake="60s")
        until(lambda: _tiles(driver).get("e2e-c1") == "1.2.0", 60, "the canary on 1.2.0")
        cache = fleet.state / "git"
        fleet.exporter.set_error_rate("e2e-c1", 0.5)
        deadline, committed, shown = time.monotonic() + 120, None, None
        sha, message = "", ""
        while time.monotonic() < deadline and shown is None:
            if committed is None:
                sha, message = _branch_head(cache)
                if message.startswith("Roll back shop 1.2.0"):
                    committed = time.monotonic()
            found = driver.execute_script(
                "return [...document.querySelectorAll('#recent-list li[data-kind=rollback]')]"
                ".map(li => [li.dataset.commit, li.textContent])")
            if committed is not None and any(c == sha for c, _ in found):
                shown = time.monotonic()
            time.sleep(0.05)
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
        assert committed is not None, "no revert commit"
        assert shown is not None and shown - committed <= 2.0, (committed, shown)
        print(f"revert commit -> shown in the page's history: {shown - committed:.2f}s")
        item = next(t for c, t in found if c == sha)
        value = re.search(r"= (\S+) > 0\.05", message)
        assert value is not None, message
        assert f"alarm 'error-rate' on e2e-c1 = {value[1]} > 0.05" in item, (item, message)
        until(lambda: _tiles(driver).get("e2e-c1") == "1.1.0", 60, "the canary rolled back")
        assert _tiles(driver) == dict.fromkeys(CELLS, "1.1.0")

        # -- no secret anywhere; no CSP violation ----------------------------------------
        secrets = (fleet.pg.password, TOKEN)
        for path in ("/api/status", "/api/fleet", "/api/rollout/shop", "/api/history",
                     "/api/cell/e2e-c1", "/api/canary/shop", "/api/meta"):
            code, body = _get(base + path, TOKEN)
            assert code == 200, path
            assert not any(s in body.decode() for s in secrets), path
        driver.get(base + "/#/cell/e2e-c1")
        until(lambda: "Migration ledger" in _text(driver, "#cell"), 20, "the cell page")
        page = driver.page_source
        assert "0001-currency" in page and "ConfigMap/shop-config" in page
        assert not any(s in page for s in secrets)
        assert [e for e in console_errors(driver) if "Content Security Policy" in e] == []
        cell = json.loads(_get(base + "/api/cell/e2e-c1", TOKEN)[1])
        assert cell["recent"], "the cell page lists its last steps"

        # -- stale: a daemon that stops ticking ------------------------------------------
        driver.get(base + "/")
        until(lambda: _text(driver, "#live") == "live", 10, "the stream again")
        assert not driver.find_element("id", "stale").is_displayed()
        daemon._scheduler.pause()
        try:
            until(lambda: driver.find_element("id", "stale").is_displayed(), 10,
                  "the stale banner after 3 intervals without a tick")
            assert "not ticked" in _text(driver, "#stale")
        finally:
            daemon._scheduler.resume()
        until(lambda: not driver.find_element("id", "stale").is_displayed(), 10,
              "the banner gone at the next tick")
