"""End to end through a real ``reconciler run``: baseline analysis on real PromQL in a real
Prometheus scraping the test exporter, whose per-version series follow the versions the
real Deployments run. Every cell fails 1% of its requests, under the absolute alarm
(5%); the analysis compares the canary's cells with the region's cells still on the
previous version (maxRatio 1.5, minSamples 3).

- a version that serves no requests yet has too few samples: its canary waits (the next
  wave never starts), it never passes;
- once it serves 1.1x the baseline's error rate it proceeds through every wave;
- a version at 3x the baseline is rolled back with one revert commit naming the ratio."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from reconciler.testing.gitserver import git
from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.daemon import DaemonProcess, RemoteFleet
from tests.e2e.support import following_versions, live_versions

pytestmark = pytest.mark.e2e

RULE = """
    - name: error-ratio
      compare: baseline
      query: >-
        sum(rate(app_requests_total{cell=~"{{ cells }}",version="{{ version }}",code=~"5.."}[4s]))
        / sum(rate(app_requests_total{cell=~"{{ cells }}",version="{{ version }}"}[4s]))
      maxRatio: 1.5
      minBaseline: 0.001
      minSamples: 3
      window: 6s
"""


def _with_baseline_rule(fleet: Fleet) -> None:
    path = fleet.repo / "reconciler.yaml"
    path.write_text(path.read_text().rstrip("\n") + "\n" + RULE.lstrip("\n"))


def _ratio(text: str) -> float:
    m = re.search(r"ratio ([0-9.]+) > maxRatio 1\.5", text)
    assert m, text
    return float(m[1])


def test_baseline_analysis_waits_passes_and_rolls_back(fleet: Fleet, tmp_path: Path) -> None:
    _with_baseline_rule(fleet)
    remote = RemoteFleet(fleet, tmp_path)
    daemon = DaemonProcess(remote, tmp_path / "state")
    exporter = fleet.exporter
    for cell in CELLS:
        exporter.set_error_rate(cell, 0.01)
    try:
        with following_versions(fleet):
            daemon.start()
            daemon.wait_for(lambda: remote.cells_at("1.0.0"), "install at 1.0.0")
            # (1) too few samples: 1.1.0 serves nothing yet -> the canary waits
            exporter.set_version_traffic("1.1.0", 0.0)
            remote.push_version("1.1.0", canary_bake="2s")
            daemon.wait_for(lambda: "applied shop 1.1.0 to e2e-c1" in daemon.text(),
                            "the canary at 1.1.0")
            daemon.wait_for(lambda: "analysis 'error-ratio' pending for e2e-c1" in
                            daemon.text(), "the analysis waiting for samples")
            time.sleep(12)  # six bakes of the canary wave: it never passes
            assert "applied shop 1.1.0 to e2e-z1" not in daemon.text()
            assert "Roll back" not in git(remote.bare, "log", "--format=%s", "main")
            daemon.wait_for(lambda: "waiting for samples" in
                            remote.show("status/cells/e2e-c1.yaml"), "status: waiting")
            # (2) 1.1x the baseline: it proceeds through every wave
            exporter.set_version_error_rate("1.1.0", 0.011)
            exporter.set_version_traffic("1.1.0", None)
            daemon.wait_for(lambda: remote.cells_at("1.1.0") and remote.waves_done(),
                            "1.1.0 everywhere", timeout=180)
            passed = re.search(r"analysis 'error-ratio' passing for e2e-c1: (.*)",
                               daemon.text())
            assert passed and "ratio 1.1" in passed[1] and ": pass" in passed[1], passed
            exporter.set_version_error_rate("1.1.0", None)  # back to the cells' 1%
            # (3) 3x the baseline, still under the absolute 5%: rolled back
            exporter.set_version_error_rate("1.2.0", 0.03)
            remote.push_version("1.2.0", canary_bake="60s")
            bump = git(remote.bare, "rev-parse", "main")
            daemon.wait_for(lambda: "Roll back shop 1.2.0" in git(
                remote.bare, "log", "--format=%s", "main"), "the revert pushed")
            daemon.wait_for(lambda: remote.cells_at("1.1.0"), "every cell back at 1.1.0")
    finally:
        rc = daemon.stop()
        remote.stop()
        for cell in CELLS:
            exporter.set_error_rate(cell, 0.0)
        for version in ("1.1.0", "1.2.0"):
            exporter.set_version_error_rate(version, None)
            exporter.set_version_traffic(version, None)
    assert rc == 0
    log = git(remote.bare, "log", "--format=%H %s", "main").splitlines()
    reverts = [line.split()[0] for line in log if "Roll back shop 1.2.0" in line]
    assert len(reverts) == 1, log
    assert not any("Roll back shop 1.1.0" in line for line in log)
    message = git(remote.bare, "log", "-1", "--format=%B", reverts[0])
    assert f"Reconciler-Rollback-Of: {bump}" in message
    assert "alarm 'error-ratio' fired on e2e-c1" in message, message
    assert "1.2.0 vs 1.1.0 in region r1" in message, message
    assert 2.5 <= _ratio(message) <= 3.5, message
    assert "alarm 'error-rate'" not in message  # the absolute alarm never fired
    fired = re.search(r"analysis 'error-ratio' firing for e2e-c1: (.*)", daemon.text())
    assert fired and 2.5 <= _ratio(fired[1]) <= 3.5, fired
    applied = set(re.findall(r"applied shop 1\.2\.0 to (e2e-\w+)", daemon.text()))
    assert applied == {"e2e-c1"}  # later waves never saw the bad version
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.1.0", "Healthy"))
    assert "version: 1.1.0" in remote.show("releases/shop.yaml")
    rollout = yaml.safe_load(remote.show("status/rollouts/shop.yaml"))
    assert rollout, rollout
