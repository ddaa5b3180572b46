"""End to end through the daemon and Git over HTTP: a bump promoted wave by wave with
status commits pushed; ``kill -9`` mid-apply and mid-bake, and a restart that finishes
the rollout without repeating the bake or losing anything, ending with the same human
Git history as an uninterrupted run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import CELLS, Fleet, set_canary_bake
from tests.e2e.daemon import PASSWORD, DaemonProcess, RemoteFleet
from tests.e2e.support import live_versions, migration_phase

pytestmark = pytest.mark.e2e


def test_kill9_mid_apply_and_mid_bake_then_resume(fleet: Fleet, tmp_path: Path) -> None:
    set_canary_bake(fleet.repo, "8s")
    remote = RemoteFleet(fleet, tmp_path)
    before = remote.human_history()
    daemon = DaemonProcess(remote, tmp_path / "state")
    try:
        daemon.start()
        daemon.wait_for(lambda: remote.cells_at("1.0.0") and remote.waves_done(),
                        "install at 1.0.0")

        remote.push_version("2.0.0")
        daemon.wait_for(lambda: "applied shop 2.0.0" in daemon.text(), "the first 2.0.0 apply")
        daemon.kill9()  # mid-apply: the canary applied, nothing recorded after it
        daemon.start()
        daemon.wait_for(lambda: (remote.rollout().get("canary") or {}).get("bakeStartedAt")
                        is not None and (remote.rollout().get("canary") or {}).get("version")
                        == "2.0.0", "the canary's bake start in Git")
        bake_start = remote.rollout()["canary"]["bakeStartedAt"]
        daemon.kill9()  # mid-bake
        daemon.start()
        daemon.wait_for(lambda: remote.cells_at("2.0.0") and remote.waves_done() and {
            migration_phase(fleet, c) for c in CELLS} == {"contracted"}, "the rollout to finish")
        assert remote.rollout()["canary"]["bakeStartedAt"] == bake_start  # not restarted
    finally:
        rc = daemon.stop()
        remote.stop()
    assert rc == 0
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))
    assert {migration_phase(fleet, c) for c in CELLS} == {"contracted"}
    # exactly the history an uninterrupted run leaves: the humans' commits, no others
    assert remote.human_history() == ["bump shop to 2.0.0", *before]
    applies = re.findall(r"applied shop 2\.0\.0 to (e2e-\w+)", daemon.text())
    assert sorted(set(applies)) == sorted(CELLS)
    assert PASSWORD not in daemon.text()
