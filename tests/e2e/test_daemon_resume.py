"""End to end through the daemon and Git over HTTP: a bump promoted wave by wave with
status commits pushed; ``kill -9`` mid-apply and mid-bake, and a restart that finishes
the rollout without repeating the bake or losing anything, ending with the same human
Git history as an uninterrupted run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.daemon import PASSWORD, DaemonProcess, RemoteFleet
from tests.e2e.support import live_versions, migration_phase

pytestmark = pytest.mark.e2e


def _slow_canary(fleet: Fleet) -> None:
    cfg = fleet.repo / "reconciler.yaml"
    cfg.write_text(cfg.read_text().replace("{name: canary, groups: [canary], bake: 2s",
                                           "{name: canary, groups: [canary], bake: 8s"))


def _rollout(remote: RemoteFleet) -> dict[str, dict[str, object]]:
    doc = yaml.safe_load(remote.show("status/rollouts/shop.yaml") or "{}") or {}
    waves: dict[str, dict[str, object]] = doc.get("waves") or {}
    return waves


def _all_at(remote: RemoteFleet, version: str) -> bool:
    for cell in CELLS:
        doc = yaml.safe_load(remote.show(f"status/cells/{cell}.yaml") or "{}") or {}
        shop = (doc.get("services") or {}).get("shop") or {}
        if shop.get("version") != version or shop.get("health") != "Healthy":
            return False
    waves = _rollout(remote)
    return bool(waves) and all(w.get("state") == "done" for w in waves.values())


def test_kill9_mid_apply_and_mid_bake_then_resume(fleet: Fleet, tmp_path: Path) -> None:
    _slow_canary(fleet)
    remote = RemoteFleet(fleet, tmp_path)
    before = remote.human_history()
    daemon = DaemonProcess(remote, tmp_path / "state")
    try:
        daemon.start()
        daemon.wait_for(lambda: _all_at(remote, "1.0.0"), "install at 1.0.0")

        remote.push_version("2.0.0")
        daemon.wait_for(lambda: "applied shop 2.0.0" in daemon.text(), "the first 2.0.0 apply")
        daemon.kill9()  # mid-apply: the canary applied, nothing recorded after it
        daemon.start()
        daemon.wait_for(lambda: (_rollout(remote).get("canary") or {}).get("bakeStartedAt")
                        is not None and (_rollout(remote).get("canary") or {}).get("version")
                        == "2.0.0", "the canary's bake start in Git")
        bake_start = _rollout(remote)["canary"]["bakeStartedAt"]
        daemon.kill9()  # mid-bake
        daemon.start()
        daemon.wait_for(lambda: _all_at(remote, "2.0.0") and {
            migration_phase(fleet, c) for c in CELLS} == {"contracted"}, "the rollout to finish")
        assert _rollout(remote)["canary"]["bakeStartedAt"] == bake_start  # not restarted
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
