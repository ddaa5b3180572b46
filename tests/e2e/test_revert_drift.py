"""End to end: a human ``git revert`` of a finished rollout rolls every cell back (and is
refused, with the reason in the plan, once a contract has run); drift made by hand — a
Deployment scaled and its image changed — is reported and healed."""

from __future__ import annotations

import json

import pytest

from reconciler.engine.executor import Outcome
from tests.e2e.conftest import CELLS, Fleet
from tests.e2e.support import SteppedDaemon, drift_reported, live_versions, stepped_daemon
from tests.e2e.test_rollout import converged, done_steps

pytestmark = pytest.mark.e2e


def test_human_revert_rolls_back_everywhere_and_is_refused_below_a_contract(
        fleet: Fleet) -> None:
    with stepped_daemon(fleet) as d:
        _human_reverts(fleet, d)


def _human_reverts(fleet: Fleet, d: SteppedDaemon) -> None:
    log: list[Outcome] = []
    fleet.set_version("2.0.0")  # carries migration 0001, contracted once everything baked
    d.run_until(converged, log)
    fleet.set_version("2.1.0")
    d.run_until(converged, log)
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.1.0", "Healthy"))

    fleet.pull()
    bump_to_21 = fleet.git("log", "--format=%H", "--grep", "bump shop to 2.1.0", "-1")
    fleet.git("revert", "--no-edit", bump_to_21)  # a human reverts the 2.1.0 bump
    fleet.push()
    log.clear()
    d.run_until(converged, log)
    moved = [s for s in (o.step for o in log if o.status == "done")
             if s.kind in ("kubernetes-apply", "rollback")]
    assert {s.cell for s in moved} == set(CELLS)
    assert all((s.from_version, s.to_version) == ("2.1.0", "2.0.0") for s in moved), moved
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))

    bump_to_2 = fleet.git("log", "--format=%H", "--grep", "bump shop to 2.0.0", "-1")
    fleet.git("revert", "--no-edit", bump_to_2)  # below the contracted migration's floor
    fleet.push()
    report = d.tick()
    assert report.plan is not None and report.plan.refusals
    reasons = " ".join(r.reason for r in report.plan.refusals)
    assert "0001" in reasons or "contract" in reasons, reasons
    assert not [o for o in report.outcomes if o.status == "done" and
                o.step.kind in ("kubernetes-apply", "rollback")]
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("2.0.0", "Healthy"))


def _deployment(fleet: Fleet, ns: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(fleet.plane.kubectl(
        "get", "deployment", "shop", "-n", ns, "-o", "json"))
    return doc


def test_drift_by_hand_is_reported_and_healed(fleet: Fleet) -> None:
    with stepped_daemon(fleet) as d:
        _drift_by_hand(fleet, d)


def _drift_by_hand(fleet: Fleet, d: SteppedDaemon) -> None:
    log: list[Outcome] = []
    d.run_until(converged, log)
    result = d.reconciler.last_good
    assert result is not None
    ns = result.cells["e2e-z1"].kubernetes.namespace
    before = _deployment(fleet, ns)
    spec = before["spec"]
    assert isinstance(spec, dict)
    # one write with both changes; the tick reads the drift watch's store, which holds a
    # change by someone else once its event has arrived: wait for the watch to report it
    with drift_reported(d, "e2e-z1"):
        fleet.plane.kubectl("patch", "deployment", "shop", "-n", ns, "--type=json", "-p",
                            json.dumps([{"op": "replace", "path": "/spec/replicas", "value": 7},
                                        {"op": "replace",
                                         "path": "/spec/template/spec/containers/0/image",
                                         "value": "registry.local/shop:hacked"}]))
    report = d.tick()
    live = report.live.service("e2e-z1", "shop") if report.live else None
    assert live is not None and live.drift, "drift not reported"
    fields = {d.field for d in live.drift}
    assert any("replicas" in f for f in fields) and any("image" in f for f in fields), fields
    heals = [o for o in report.outcomes if o.step.kind == "kubernetes-apply"]
    assert heals and heals[0].status == "done" and "heal drift" in heals[0].step.detail
    after = _deployment(fleet, ns)
    a_spec = after["spec"]
    assert isinstance(a_spec, dict)
    assert a_spec["replicas"] == spec["replicas"]
    image = a_spec["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":1.0.0"), image
    log.clear()
    d.run_until(converged, log)
    assert live_versions(fleet) == dict.fromkeys(CELLS, ("1.0.0", "Healthy"))
    assert not done_steps(log, "rollback")


def test_terraform_object_changed_by_hand_is_found_and_healed(fleet: Fleet) -> None:
    with stepped_daemon(fleet) as d:
        _terraform_by_hand(fleet, d)


def _terraform_by_hand(fleet: Fleet, d: SteppedDaemon) -> None:
    rec = d.reconciler
    log: list[Outcome] = []
    d.run_until(converged, log)
    conf = fleet.state / "terraform" / "shop" / "e2e-z1" / "e2e-z1.conf"  # its workspace
    assert conf.read_text() == "queue=orders-e2e-z1\n"
    assert not [f for f in rec.check_terraform_drift() if f.changes]  # nothing yet

    conf.write_text("queue=hand-edited\n")  # an object Terraform manages, changed by hand
    found = [f for f in rec.check_terraform_drift() if f.changes or f.error]
    assert [(f.target.cell, f.changes, f.error) for f in found] == [
        ("e2e-z1", ("local_file.queue_conf",), "")]
    report = d.tick()
    live = report.live.service("e2e-z1", "shop") if report.live else None
    assert live is not None and live.terraform is not None and live.terraform.drifted
    heals = [o for o in report.outcomes if o.step.kind == "terraform-apply"]
    assert [(o.step.cell, o.status) for o in heals] == [("e2e-z1", "done")], heals
    assert "heal Terraform drift" in heals[0].step.detail
    assert conf.read_text() == "queue=orders-e2e-z1\n"
    assert not [f for f in rec.check_terraform_drift() if f.changes]
    assert not [o for o in d.tick().outcomes if o.step.kind == "terraform-apply"]
