"""End to end through the daemon: an invalid commit (a schema error) lands on the branch
together with a version bump — it is rejected whole with ``file:line:col`` in status and
in the logs, nothing of it is applied; drift made by hand meanwhile is seen by the watch
and healed toward the last good revision; the next valid commit rolls out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reconciler.testing.gitserver import git
from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.daemon import DaemonProcess, RemoteFleet
from tests.e2e.support import live_versions

pytestmark = pytest.mark.e2e


def _push_invalid_bump(remote: RemoteFleet, version: str) -> None:
    """Bump every group to ``version`` and, in the same commit, break a cell file."""
    git(remote.human, "pull", "-q", "--rebase")
    rel = remote.human / "releases" / "shop.yaml"
    rel.write_text(rel.read_text().replace("version: 1.0.0", f"version: {version}"))
    cell = remote.human / "cells" / "e2e-z1.yaml"
    cell.write_text(cell.read_text().replace("weight: 2", "weight: heavy"))
    git(remote.human, "commit", "-qam", f"bump shop to {version} (and a typo)")
    remote.push()


def _namespace(fleet: Fleet, cell: str) -> str:
    found = re.search(r"namespace: (\S+)", (fleet.repo / "cells" / f"{cell}.yaml").read_text())
    assert found
    return found.group(1)


def _replicas(fleet: Fleet, ns: str) -> int:
    return int(fleet.plane.kubectl("get", "deployment", "shop", "-n", ns, "-o",
                                   "jsonpath={.spec.replicas}") or -1)


def test_invalid_commit_is_rejected_whole_and_the_next_valid_one_proceeds(
        fleet: Fleet, tmp_path: Path) -> None:
    remote = RemoteFleet(fleet, tmp_path)
    daemon = DaemonProcess(remote, tmp_path / "state")
    try:
        daemon.start()
        daemon.wait_for(lambda: remote.cells_at("1.0.0") and remote.waves_done(),
                        "install at 1.0.0")
        good = git(remote.bare, "rev-list", "--max-parents=0", "main")  # the seeded fleet
        _push_invalid_bump(remote, "1.3.0")
        bad = git(remote.bare, "rev-parse", "main")
        daemon.wait_for(lambda: "valid: false" in remote.show("status/desired.yaml"),
                        "the rejection in status")
        status = yaml.safe_load(remote.show("status/desired.yaml"))
        text = str(status)
        assert re.search(r"cells/e2e-z1\.yaml:\d+:\d+: ", text), text
        assert bad[:12] in text and "weight" in text
        assert good[:12] in str(status.get("lastGoodRevision")), status
        assert re.search(r"cells/e2e-z1\.yaml:\d+:\d+: .*weight", daemon.text())
        # ticks keep running on the last good revision: nothing of 1.3.0 is applied
        daemon.wait_for(lambda: daemon.text().count("tick done") > 5, "more ticks")
        assert "1.3.0" not in "".join(re.findall(r"applied shop [^ ]+", daemon.text()))
        assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.0.0", "Healthy"))

        ns = _namespace(fleet, "e2e-z1")
        fleet.plane.kubectl("scale", "deployment", "shop", "-n", ns, "--replicas=5")
        daemon.wait_for(lambda: "drift seen" in daemon.text() and _replicas(fleet, ns) == 1,
                        "the drift seen by the watch and healed")
        assert re.search(r'"drift seen: Deployment/shop spec.replicas".*"cell": "e2e-z1"',
                         daemon.text())

        git(remote.human, "pull", "-q", "--rebase")
        bad_head = git(remote.human, "log", "-1", "--format=%H", "--grep", "and a typo")
        git(remote.human, "revert", "--no-edit", bad_head)  # the fix: both changes out ...
        rel = remote.human / "releases" / "shop.yaml"  # ... then the bump alone
        rel.write_text(rel.read_text().replace("version: 1.0.0", "version: 1.3.0"))
        git(remote.human, "commit", "-qam", "bump shop to 1.3.0")
        remote.push()
        daemon.wait_for(lambda: "valid: true" in remote.show("status/desired.yaml"),
                        "valid again")
        daemon.wait_for(lambda: remote.cells_at("1.3.0") and remote.waves_done(),
                        "the rollout of 1.3.0")
    finally:
        rc = daemon.stop()
        remote.stop()
    assert rc == 0
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.3.0", "Healthy"))
