"""One tick, with in-memory fake backends and readers: what survives an invalid revision,
how load and snapshot errors are reported, real plans carried out, the drift check."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler.adapters.errors import AdapterError, PermanentError, TemporaryError
from reconciler.core.driftcheck import DriftTarget
from reconciler.core.live import (
    AlarmState,
    LiveSnapshot,
    MigrationLive,
    MigrationRead,
    ServiceLive,
    TerraformLive,
    WaveProgress,
)
from reconciler.core.loader import LoadResult
from reconciler.core.model import DesiredState
from reconciler.core.plan import GateKind
from reconciler.core.versions import Version
from reconciler.engine.tick import DriftFinding, Readers, Reconciler, take_snapshot
from tests.engine.fakes import FakeDriftCheck, Fakes, Revert
from tests.engine.support import NOW, desired, load, release, variant

Load = Callable[[], LoadResult]


def loads(*results: LoadResult | AdapterError) -> Load:
    """A load function answering ``results`` in turn (an error is raised)."""
    it: Iterator[LoadResult | AdapterError] = iter(results)

    def load_next() -> LoadResult:
        r = next(it)
        if isinstance(r, AdapterError):
            raise r
        return r
    return load_next


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def reconciler(fakes: Fakes, load_fn: Load,
               clock: Callable[[], datetime] = lambda: NOW) -> Reconciler:
    return Reconciler(load=load_fn, readers=fakes.readers(), backends=fakes.backends(),
                      clock=clock, parallel=1)


def invalid_revision(tmp: Path) -> LoadResult:
    """rev-b: bumps app to 2.0.0 and breaks cells/b1.yaml."""
    root = variant(tmp, {"releases/app.yaml": release("2.0.0"),
                         "cells/b1.yaml": "apiVersion: reconciler.dev/v1\nkind: Cell\n"
                                          "metadata: {name: b1}\nspec: {group: zone-b}\n"})
    result = load("rev-b", root)
    assert result.desired is None and result.errors
    return result


# ------------------------------------------------------------------ the last good revision


def test_an_invalid_revision_keeps_the_last_good_one_live(tmp_path: Path) -> None:
    fakes = Fakes()
    r = reconciler(fakes, loads(load("rev-a"), invalid_revision(tmp_path)))
    first = r.tick()
    assert (first.revision, first.errors) == ("rev-a", ())
    assert fakes.log == ["terraform.apply c1 app 1.1.0"]
    second = r.tick()
    assert second.revision == "rev-b"
    assert second.errors and all(e.startswith("cells/b1.yaml:") for e in second.errors)
    assert second.plan is not None and second.plan.revision == "rev-a"
    assert [o.status for o in second.outcomes] == ["done"]
    assert fakes.log == ["terraform.apply c1 app 1.1.0", "kubernetes.apply c1 app 1.1.0"]
    assert not [e for e in fakes.log if "2.0.0" in e]
    assert r.last_good is not None and r.last_good.revision == "rev-a"


def test_an_invalid_first_revision_applies_nothing(tmp_path: Path) -> None:
    fakes = Fakes()
    report = reconciler(fakes, loads(invalid_revision(tmp_path))).tick()
    assert (report.revision, report.plan, report.outcomes) == ("rev-b", None, ())
    assert report.errors
    assert fakes.log == []


#: (good ticks before the error, revision planned by the failing tick, all calls)
LOAD_ERRORS: tuple[tuple[str, int, str | None, list[str]], ...] = (
    ("nothing loaded before: nothing is planned", 0, None, []),
    ("a good revision before: it stays live", 1, "rev-a",
     ["terraform.apply c1 app 1.1.0", "kubernetes.apply c1 app 1.1.0"]),
)


@pytest.mark.parametrize(("good_ticks", "plan_revision", "calls"),
                         [c[1:] for c in LOAD_ERRORS], ids=[c[0] for c in LOAD_ERRORS])
def test_a_load_error_is_reported(good_ticks: int, plan_revision: str | None,
                                  calls: list[str]) -> None:
    fakes = Fakes()
    error = TemporaryError("git fetch: connection refused", 5.0)
    r = reconciler(fakes, loads(*[load("rev-a")] * good_ticks, error))
    for _ in range(good_ticks):
        r.tick()
    report = r.tick()
    assert (report.revision, report.errors) == (None, ("git fetch: connection refused",))
    assert (report.plan.revision if report.plan else None) == plan_revision
    assert fakes.log == calls


# ------------------------------------------------------------------ snapshot


def test_a_snapshot_error_gives_snapshot_error_and_no_plan() -> None:
    fakes = Fakes()

    def unreachable(d: DesiredState) -> Mapping[str, Mapping[str, ServiceLive]]:
        raise TemporaryError("kubernetes: connection refused", 5.0)
    r = Reconciler(load=loads(load("rev-a")), backends=fakes.backends(), clock=lambda: NOW,
                   readers=Readers(services=unreachable, terraform=fakes.terraform.read))
    report = r.tick()
    assert report.snapshot_error == "kubernetes: connection refused"
    assert (report.revision, report.errors, report.plan, report.outcomes) == (
        "rev-a", (), None, ())
    assert "services" in report.timings
    assert fakes.log == []


def test_take_snapshot_without_readers_is_empty() -> None:
    assert take_snapshot(desired(), Readers()) == LiveSnapshot()


def test_take_snapshot_merges_terraform_into_services_and_times_each_reader() -> None:
    fakes, d = Fakes(), desired()
    fakes.kubernetes.run("c1", "app", "1.1.0", previous="1.0.0")
    fakes.terraform.record(d, "c1", "app", "1.1.0")
    fakes.terraform.record(d, "a1", "app", "1.1.0")
    fakes.progress.start_bake("app", "canary", "1.1.0", NOW)
    alarm = AlarmState("error-rate", "c1", False, 0.1, 1.0, 5)
    migs = {"c1": {"main": {"m1": MigrationLive("expanded")}}}
    readers = Readers(services=fakes.kubernetes.read, terraform=fakes.terraform.read,
                      migrations=lambda _: MigrationRead(migs, {"a1": "db down"}),
                      alarms=lambda _: (alarm,), rollout=fakes.progress.rollout)
    timings: dict[str, float] = {}
    snap = take_snapshot(d, readers, timings)
    assert snap.faults == {"a1": "db down"}
    tf = fakes.terraform.state
    assert snap.services["c1"]["app"] == ServiceLive(Version.parse("1.1.0"), "Healthy",
                                                     Version.parse("1.0.0"),
                                                     terraform=tf["c1"]["app"])
    assert snap.services["a1"]["app"] == ServiceLive(None, "Missing",
                                                     terraform=tf["a1"]["app"])
    assert (snap.databases, snap.alarms) == (migs, (alarm,))
    assert snap.rollout == {"app": {"canary": WaveProgress(Version.parse("1.1.0"), NOW)}}
    assert set(timings) == {"services", "terraform", "migrations", "alarms"}


def test_take_snapshot_lets_adapter_errors_through() -> None:
    def refused(d: DesiredState) -> Mapping[str, Mapping[str, ServiceLive]]:
        raise PermanentError("kubernetes: forbidden")
    with pytest.raises(PermanentError, match="forbidden"):
        take_snapshot(desired(), Readers(services=refused))


# ------------------------------------------------------------------ real plans

#: A fresh install, tick by tick: (minutes after NOW, what the tick calls).
FRESH_INSTALL: tuple[tuple[int, list[str]], ...] = (
    (0, ["terraform.apply c1 app 1.1.0"]),
    (0, ["kubernetes.apply c1 app 1.1.0"]),
    (0, ["progress.start_bake app canary 1.1.0"]),
    (5, []),  # the canary bakes for 10 minutes
    (11, ["terraform.apply a1 app 1.1.0"]),  # maxUnavailable 50% of 2 cells: one at a time
    (11, ["kubernetes.apply a1 app 1.1.0"]),
    (11, ["terraform.apply b1 app 1.1.0"]),
)


def test_a_fresh_install_moves_tick_by_tick_through_the_fakes() -> None:
    fakes, clock = Fakes(), Clock()
    r = reconciler(fakes, lambda: load("rev-a"), clock)
    for n, (minutes, calls) in enumerate(FRESH_INSTALL):
        clock.now = NOW + timedelta(minutes=minutes)
        before = len(fakes.log)
        report = r.tick()
        assert fakes.log[before:] == calls, f"tick {n}"
        assert report.plan is not None and report.failed == ()
        assert [o.status for o in report.outcomes] == ["done"] * len(calls)
    assert fakes.kubernetes.outputs_seen["c1"] == {"queue_url": "https://queue.c1.example"}


def test_failed_outcomes_are_reported() -> None:
    fakes = Fakes({"terraform": {"c1": PermanentError("invalid variable size")}})
    report = reconciler(fakes, loads(load("rev-a"))).tick()
    assert [(o.step.id, o.status, o.detail) for o in report.failed] == [
        ("terraform-apply/app/canary/c1/-/1.1.0", "failed", "invalid variable size")]


def test_once_stopped_a_tick_starts_no_step() -> None:
    fakes = Fakes()
    r = reconciler(fakes, loads(load("rev-a")))
    r.stop.set()
    report = r.tick()
    assert [(o.step.kind, o.status) for o in report.outcomes] == [
        ("terraform-apply", "skipped")]
    assert fakes.log == []


#: (failing wave, rollback policy, cells on 1.1.0 (the failing one Degraded), the groups
#: the revert must set back — the failing wave's and every later wave's, every wave's
#: under rollback-all — and the cells rolled back)
FAILURES: tuple[tuple[str, str, dict[str, str], tuple[str, ...], list[str]], ...] = (
    ("canary", "wave", {"c1": "Degraded"}, ("canary", "zone-a", "zone-b", "rest"), ["c1"]),
    ("zone", "wave", {"c1": "Healthy", "a1": "Degraded"}, ("zone-a", "zone-b", "rest"),
     ["a1"]),
    ("zone", "rollback-all", {"c1": "Healthy", "a1": "Degraded"},
     ("canary", "zone-a", "zone-b", "rest"), ["a1", "c1"]),
)


def _fleet_with_policy(policy: str) -> str:
    text = (Path(__file__).parent / "fixtures" / "repo" / "reconciler.yaml").read_text()
    return text + f"  rollout:\n    rollback: {policy}\n"


@pytest.mark.parametrize(("wave", "policy", "upgraded", "groups", "rolled_back"), FAILURES,
                         ids=[f"{f[0]} fails, rollback {f[1]}" for f in FAILURES])
def test_a_failing_wave_is_rolled_back_and_reverted(
        tmp_path: Path, wave: str, policy: str, upgraded: dict[str, str],
        groups: tuple[str, ...], rolled_back: list[str]) -> None:
    root = variant(tmp_path, {"reconciler.yaml": _fleet_with_policy(policy)})
    d = load("rev-a", root).desired
    assert d is not None and d.fleet.rollback_policy == policy
    fakes = Fakes()
    for c in ("c1", "a1", "b1", "r1"):
        version = "1.1.0" if c in upgraded else "1.0.0"
        fakes.kubernetes.run(c, "app", version, upgraded.get(c, "Healthy"),
                             "1.0.0" if c in upgraded else "0.9.0")
        fakes.terraform.record(d, c, "app", version)
    if wave == "zone":  # the canary baked 1.1.0 long ago
        fakes.progress.start_bake("app", "canary", "1.1.0", NOW - timedelta(hours=2))
        fakes.log.clear()
    report = reconciler(fakes, loads(load("rev-a", root))).tick()
    failing = next(c for c, h in upgraded.items() if h == "Degraded")
    assert fakes.git.reverts == [Revert("app", groups, "1.1.0",
                                        f"{failing} is Degraded on 1.1.0: Degraded")]
    assert fakes.log == [f"progress.record_failure app {wave} 1.1.0", "git.revert app 1.1.0",
                         *[f"kubernetes.apply {c} app 1.0.0" for c in rolled_back]]
    assert report.failed == ()


# ------------------------------------------------------------------ Terraform drift check


def _drift_setup(d: DesiredState, fakes: Fakes) -> None:
    """c1 applied with today's inputs (checked), a1 with an older version's (the plan
    moves it; never checked toward the old version), b1 already known drifted, r1 never."""
    fakes.terraform.record(d, "c1", "app", "1.1.0")
    fakes.terraform.record(d, "a1", "app", "1.0.0")
    fakes.terraform.record(d, "b1", "app", "1.1.0", drifted=True)


C1 = DriftTarget("c1", "app", "1.1.0")
LOCKED = TemporaryError("terraform plan: state lock held", 5.0)
#: (what the checker answers, what the check reports); only c1 is ever checked.
DRIFT: tuple[tuple[str, Callable[[], FakeDriftCheck], tuple[DriftFinding, ...]], ...] = (
    ("drift found on the one stack at its desired version",
     lambda: FakeDriftCheck(changes={"c1": ("terraform_data.queue",)}),
     (DriftFinding(C1, ("terraform_data.queue",)),)),
    ("no drift", FakeDriftCheck, (DriftFinding(C1),)),
    ("a failed check is reported on its stack", lambda: FakeDriftCheck(fail={"c1": LOCKED}),
     (DriftFinding(C1, error="terraform plan: state lock held"),)),
)


@pytest.mark.parametrize(("make_check", "findings"), [c[1:] for c in DRIFT],
                         ids=[c[0] for c in DRIFT])
def test_check_terraform_drift_checks_only_stacks_at_their_desired_version(
        make_check: Callable[[], FakeDriftCheck], findings: tuple[DriftFinding, ...]) -> None:
    d, fakes, drift = desired(), Fakes(), make_check()
    _drift_setup(d, fakes)
    r = Reconciler(load=loads(), readers=fakes.readers(drift), backends=fakes.backends(),
                   last_good=d)
    assert r.check_terraform_drift() == findings
    assert drift.checked == [("c1", "app", "1.1.0")]
    assert fakes.log == []


def _no_terraform(d: DesiredState) -> Mapping[str, Mapping[str, TerraformLive]]:
    raise TemporaryError("terraform state: connection refused", 5.0)


@pytest.mark.parametrize("situation", ["never loaded", "stopped", "state unreadable"])
def test_check_terraform_drift_checks_nothing(situation: str) -> None:
    d, fakes = desired(), Fakes()
    _drift_setup(d, fakes)
    drift = FakeDriftCheck()
    readers = fakes.readers(drift)
    if situation == "state unreadable":
        readers = Readers(terraform=_no_terraform, terraform_drift=drift)
    r = Reconciler(load=loads(), readers=readers, backends=fakes.backends(),
                   last_good=None if situation == "never loaded" else d)
    if situation == "stopped":
        r.stop.set()
    assert r.check_terraform_drift() == ()
    assert drift.checked == []


def test_check_terraform_drift_uses_the_last_good_revision(tmp_path: Path) -> None:
    fakes, drift = Fakes(), FakeDriftCheck()
    d = desired()
    fakes.terraform.record(d, "c1", "app", "1.1.0")
    r = Reconciler(load=loads(load("rev-a"), invalid_revision(tmp_path)),
                   readers=fakes.readers(drift), backends=fakes.backends(), parallel=1)
    assert r.tick().errors == ()
    assert r.tick().errors != ()
    assert r.check_terraform_drift() == (DriftFinding(C1),)
    assert drift.checked == [("c1", "app", "1.1.0")]



@pytest.mark.parametrize(("faulty", "runs"), [
    ("c1", []),  # the canary's database is down: the canary is held, nothing else may go
    ("r1", ["terraform.apply c1 app 1.1.0"]),  # a later cell is down: the canary proceeds
])
def test_a_cell_whose_database_cannot_be_read_is_held_alone(faulty: str,
                                                             runs: list[str]) -> None:
    fakes = Fakes()
    why = "migration ledger unreadable: connection refused"
    readers = replace(fakes.readers(), migrations=lambda _: MigrationRead({}, {faulty: why}))
    r = Reconciler(lambda: load("rev-a"), readers, fakes.backends(), clock=lambda: NOW)
    report = r.tick()
    assert report.plan is not None and report.snapshot_error == ""
    assert fakes.log == runs
    held = [s for s in report.plan.steps if s.cell == faulty]
    assert held and all(s.gate.kind == GateKind.CELL_FAULT for s in held)
    assert all(s.gate.reason == f"{faulty}: {why}" for s in held)
    assert report.live is not None and report.live.faults == {faulty: why}
