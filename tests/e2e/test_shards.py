"""End to end through three real ``reconciler run`` processes sharing one fleet through
shard Leases on the local control plane: every cell of a rollout applied by exactly the
replica the Leases make its owner (the inventory's ``reconciler.dev/applied-by`` and the
logs); one replica killed with SIGKILL mid-rollout → its shards taken over within the
Lease duration and the rollout completes under the others; a breach of the canary →
exactly one revert commit, by exactly one replica."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.adapters.kubernetes.inventory import APPLIED_BY
from reconciler.adapters.kubernetes.lease import holder
from reconciler.adapters.kubernetes.shardleases import LABEL
from reconciler.compose.oneshot import load_directory
from reconciler.core.shards import ShardMap
from reconciler.testing.gitserver import git
from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.daemon import DaemonProcess, RemoteFleet

pytestmark = pytest.mark.e2e
SHARDS, LEASE = 6, 3
NAMES = ("r1", "r2", "r3")


def _shard_map(fleet: Fleet, ns: str) -> ShardMap:
    """The shard map as the Leases on the API server say (live holders only)."""
    leases = fleet.plane.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
               f"?labelSelector={LABEL}=shards")
    now, holders = datetime.now(UTC), {}
    for lease in leases["items"]:
        name = lease["metadata"]["name"]
        who = holder(lease.get("spec") or {}, now)
        if "-shard-" in name and who:
            holders[int(name.rsplit("-", 1)[1])] = who
    return ShardMap(SHARDS, holders)


def _readyz(d: DaemonProcess) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/readyz", timeout=5) as r:
            return str(r.read().decode())
    except OSError as e:
        return str(e)


def _stable(fleet: Fleet, ns: str, live: list[DaemonProcess]) -> ShardMap | None:
    """The shard map once every shard is held by the live replicas alone, and each of
    them reports that same map on /readyz."""
    shards = _shard_map(fleet, ns)
    if len(shards.holders) != SHARDS or set(shards.replicas()) != {d.name for d in live}:
        return None
    texts = {_readyz(d).split(" | ", 1)[-1].replace(" (this replica)", "") for d in live}
    return shards if len(texts) == 1 and f"{SHARDS}/{SHARDS} shards held" in texts.pop() \
        else None


def _wait_stable(fleet: Fleet, ns: str, live: list[DaemonProcess], what: str,
                 timeout: float = 240) -> ShardMap:
    box: list[ShardMap] = []

    def stable() -> bool:
        got = _stable(fleet, ns, live)
        if got is not None:
            box.append(got)
        return got is not None

    live[0].wait_for(stable, what, timeout)
    return box[-1]


def _check_metrics(d: DaemonProcess, shards: ShardMap) -> None:
    """/metrics: which replica holds each shard, and how many cells each runs."""
    with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', m))
              for m in re.findall(r"reconciler_shard_holder\{([^}]*)\} 1\.0", text)]
    assert {int(x["shard"]): x["replica"] for x in labels} == dict(shards.holders), text
    cells = dict(re.findall(r'reconciler_shard_cells\{replica="(\w+)"\} (\d+)\.0', text))
    counts = {r: sum(1 for o in shards.owners(CELLS).values() if o == r)
              for r in shards.replicas()}
    assert {r: int(n) for r, n in cells.items()} == counts, text


def _applied_by(fleet: Fleet, cell: str) -> tuple[str, str]:
    """The version and replica the cell's shop inventory records."""
    desired = load_directory(fleet.repo).desired
    assert desired is not None
    ns = desired.cells[cell].kubernetes.namespace
    cm = fleet.plane.request("GET", f"/api/v1/namespaces/{ns}/configmaps/"
                                    f"reconciler-inv-{cell}-shop")
    return cm["data"]["version"], cm["metadata"].get("annotations", {}).get(APPLIED_BY, "")


def _appliers(replicas: list[DaemonProcess], version: str) -> dict[str, list[str]]:
    """cell -> the replicas that logged applying ``version`` to it."""
    out: dict[str, list[str]] = {}
    for d in replicas:
        for cell in re.findall(rf"applied shop {re.escape(version)} to (e2e-\w+)", d.text()):
            out.setdefault(cell, []).append(d.name)
    return out


def test_three_replicas_share_a_rollout_survive_a_kill_and_revert_once(
        fleet: Fleet, tmp_path: Path) -> None:
    remote = RemoteFleet(fleet, tmp_path)
    ns = f"shards-{uuid.uuid4().hex[:6]}"
    fleet.plane.create_namespace(ns)
    shared_tf = tmp_path / "terraform-shared"
    replicas = [DaemonProcess(remote, tmp_path / f"state-{name}", name, {
        "shards": {"count": SHARDS, "leaseDuration": f"{LEASE}s", "namespace": ns,
                   "name": "shards", "replicaId": name,
                   "kubeconfig": str(fleet.plane.kubeconfig)},
        "terraform": {"state_dir": str(shared_tf)}}) for name in NAMES]
    live, victim = list(replicas), None
    try:
        for d in replicas:
            d.start()
        first = replicas[0]
        first.wait_for(lambda: remote.cells_at("1.0.0"), "install at 1.0.0")
        before = _wait_stable(fleet, ns, live, "three replicas holding every shard")
        owners = before.owners(CELLS)
        assert set(owners) == set(CELLS) and before.leader is not None
        _check_metrics(first, before)

        # a rollout shared by the three; the owner of e2e-r2 dies after the canary
        remote.push_version("1.1.0")
        first.wait_for(lambda: _applied_by(fleet, "e2e-c1")[0] == "1.1.0", "canary at 1.1.0")
        victim = next(d for d in replicas if d.name == owners["e2e-r2"])
        victim.kill9()
        killed_at = time.monotonic()
        live = [d for d in replicas if d is not victim]
        survivors = _wait_stable(fleet, ns, live, "the dead replica's shards taken over", 60)
        took_over = time.monotonic() - killed_at
        print(f"shards of {victim.name} taken over {took_over:.1f} s after SIGKILL")
        live[0].wait_for(lambda: remote.cells_at("1.1.0") and remote.waves_done(),
                         "the rollout completed by the survivors")
        after = survivors.owners(CELLS)
        for cell in CELLS:
            version, by = _applied_by(fleet, cell)
            assert version == "1.1.0"
            # applied by its owner: the one before the kill, or (a cell the victim had
            # not reached yet) its owner among the survivors
            assert by in (owners[cell], after[cell]) and by != "", (cell, by, owners, after)
            if owners[cell] != victim.name:
                assert by == owners[cell], (cell, by, owners)
        appliers = _appliers(replicas, "1.1.0")
        assert sorted(appliers) == sorted(CELLS), appliers
        assert all(len(v) == 1 for v in appliers.values()), appliers
        assert victim.name not in appliers["e2e-r2"] or len(appliers["e2e-r2"]) == 1

        # a breach of the canary: one revert commit, by exactly one replica
        remote.push_version("1.2.0", canary_bake="60s")
        live[0].wait_for(lambda: _applied_by(fleet, "e2e-c1")[0] == "1.2.0",
                         "canary at 1.2.0")
        fleet.exporter.set_error_rate("e2e-c1", 0.5)
        live[0].wait_for(lambda: "Roll back shop 1.2.0" in git(
            remote.bare, "log", "--format=%s", "main"), "the revert pushed")
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
        live[0].wait_for(lambda: remote.cells_at("1.1.0"), "every cell back at 1.1.0")
        time.sleep(3)  # time for a second revert, were one to come
    finally:
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
        codes = [d.stop() for d in live]
        remote.stop()
    assert victim is not None and codes == [0, 0]
    subjects = git(remote.bare, "log", "--format=%s", "main").splitlines()
    assert sum(1 for s in subjects if s.startswith("Roll back shop 1.2.0")) == 1, subjects
    reverters = {d.name: set(re.findall(r"revert committed as (\w+)", d.text()))
                 for d in replicas}
    # one replica, one commit (a second revert step finds it on the branch: the same id)
    assert [len(shas) for shas in reverters.values() if shas] == [1], reverters
    assert set(_appliers(replicas, "1.2.0")) == {"e2e-c1"}  # later waves never saw it
    # taken over within the Lease duration plus one renewal round (and the slack of a
    # loaded 2-core machine: processes scheduled late)
    assert took_over < 2 * LEASE + 2, took_over
