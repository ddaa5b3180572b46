"""The executor, table-driven over hand-built plans run through in-memory fake backends:
what runs, in which order, and what each outcome says."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from reconciler.adapters.errors import AdapterError, PermanentError, TemporaryError
from reconciler.core.model import Cell, DesiredState
from reconciler.core.plan import OPEN, Gate, GateKind, Plan, Step, StepKind
from reconciler.engine.executor import Outcome, execute, run_step
from reconciler.engine.limits import Limits
from tests.engine.fakes import Failures, Fakes, FakeTerraform, Revert
from tests.engine.support import NOW, desired

WAVE_OF = {"c1": "canary", "a1": "zone", "b1": "zone", "r1": "rest"}
INDEX = {"canary": 0, "zone": 1, "rest": 2}
GROUPS = {"canary": ("canary",), "zone": ("zone-a", "zone-b"), "rest": ("rest",)}
AFTER = Gate(GateKind.PREVIOUS_STEP, "after terraform-apply")


def cell(kind: str, name: str, *, frm: str = "1.0.0", to: str = "1.1.0",
         migration: str | None = None, gate: Gate = OPEN) -> Step:
    """A step of service ``app`` in cell ``name``."""
    wave = WAVE_OF[name]
    return Step(StepKind(kind), "app", wave, INDEX[wave], name, frm, to, migration=migration,
                database="main" if migration else None, gate=gate)


def bake(wave: str) -> Step:
    return Step(StepKind.BAKE, "app", wave, INDEX[wave], None, None, "1.1.0")


def revert(wave: str) -> Step:
    """A revert commit of ``wave`` and the waves after it (as the planner decides)."""
    later = tuple(g for w, gs in GROUPS.items() if INDEX[w] >= INDEX[wave] for g in gs)
    return Step(StepKind.REVERT_COMMIT, "app", wave, -1, None, "1.1.0", None,
                detail="a1 is Degraded on 1.1.0", groups=later)


def plan_of(*steps: Step) -> Plan:
    return Plan("rev-a", NOW, (), steps, (), (), ())


def label(o: Outcome) -> str:
    return f"{o.step.kind} {o.step.cell or o.step.wave}: {o.status}"


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    outcomes: tuple[str, ...]  # "kind cell-or-wave: status", in the order returned
    calls: tuple[str, ...]  # the fakes' call log, in order
    fail: Mapping[str, Failures] = field(default_factory=dict)
    without: tuple[str, ...] = ()  # backends left out
    details: Mapping[str, str] = field(default_factory=dict)  # outcome label -> fragment


CASES = (
    Case("wave-level steps run first, serially, in plan order",
         (cell("terraform-apply", "c1"), bake("canary"), cell("kubernetes-apply", "a1"),
          revert("zone")),
         ("bake canary: done", "revert-commit zone: done", "terraform-apply c1: done",
          "kubernetes-apply a1: done"),
         ("progress.start_bake app canary 1.1.0", "progress.record_failure app zone 1.1.0",
          "git.revert app 1.1.0", "terraform.apply c1 app 1.1.0",
          "kubernetes.apply a1 app 1.1.0"),
         details={"bake canary: done": "bake of 1.1.0 started in wave canary",
                  "revert-commit zone: done": "revert committed as 0123456789ab"}),
    Case("one cell's steps run in plan order",
         (cell("terraform-apply", "c1"), cell("migration-expand", "c1", migration="m1"),
          cell("kubernetes-apply", "c1")),
         ("terraform-apply c1: done", "migration-expand c1: done",
          "kubernetes-apply c1: done"),
         ("terraform.apply c1 app 1.1.0", "migrations.run c1 m1 expand",
          "kubernetes.apply c1 app 1.1.0"),
         details={"terraform-apply c1: done": "terraform applied (1 outputs)",
                  "migration-expand c1: done": "expand m1: applied"}),
    Case("rollback steps apply the version they roll back to",
         (cell("rollback", "a1", frm="1.1.0", to="1.0.0"),
          cell("migration-rollback", "a1", frm="1.1.0", to="1.0.0", migration="m1")),
         ("rollback a1: done", "migration-rollback a1: done"),
         ("kubernetes.apply a1 app 1.0.0", "migrations.run a1 m1 rollback")),
    Case("a temporary error stops its cell (to retry next tick); other cells go on",
         (cell("terraform-apply", "c1"), cell("kubernetes-apply", "c1"),
          cell("terraform-apply", "a1")),
         ("terraform-apply c1: retry", "terraform-apply a1: done"),
         ("terraform.apply c1 app 1.1.0", "terraform.apply a1 app 1.1.0"),
         fail={"terraform": {"c1": TemporaryError("state lock held", 42.0)}},
         details={"terraform-apply c1: retry": "state lock held"}),
    Case("any other adapter error fails the step and stops its cell",
         (cell("kubernetes-apply", "c1"), cell("migration-contract", "c1", migration="m1")),
         ("kubernetes-apply c1: failed",),
         ("kubernetes.apply c1 app 1.1.0",),
         fail={"kubernetes": {"c1": PermanentError("namespaces \"c1\" is forbidden")}},
         details={"kubernetes-apply c1: failed": "forbidden"}),
    Case("a wave-level step that fails does not stop the cells",
         (revert("zone"), cell("terraform-apply", "c1")),
         ("revert-commit zone: retry", "terraform-apply c1: done"),
         ("progress.record_failure app zone 1.1.0", "git.revert app 1.1.0",
          "terraform.apply c1 app 1.1.0"),
         fail={"git": {"app": TemporaryError("push rejected: the branch moved", 1.0)}}),
    Case("wait-healthy steps are not run",
         (cell("wait-healthy", "c1"), cell("kubernetes-apply", "a1")),
         ("kubernetes-apply a1: done",),
         ("kubernetes.apply a1 app 1.1.0",)),
    Case("steps behind a closed gate are not run",
         (cell("kubernetes-apply", "c1", gate=AFTER), cell("terraform-apply", "a1")),
         ("terraform-apply a1: done",),
         ("terraform.apply a1 app 1.1.0",)),
    Case("no Terraform backend: its step fails clearly and stops the cell",
         (cell("terraform-apply", "c1"), cell("kubernetes-apply", "c1")),
         ("terraform-apply c1: failed",), (), without=("terraform",),
         details={"terraform-apply c1: failed": "no terraform backend is configured"}),
    Case("no Kubernetes backend: its step fails clearly",
         (cell("kubernetes-apply", "a1"),),
         ("kubernetes-apply a1: failed",), (), without=("kubernetes",),
         details={"kubernetes-apply a1: failed": "no kubernetes backend is configured"}),
    Case("no migrations backend: its step fails clearly",
         (cell("migration-expand", "c1", migration="m1"),),
         ("migration-expand c1: failed",), (), without=("migrations",),
         details={"migration-expand c1: failed": "no migrations backend is configured"}),
    Case("no Git backend: the failure is recorded and the revert left to a human",
         (revert("zone"),),
         ("revert-commit zone: done",), ("progress.record_failure app zone 1.1.0",),
         without=("git",),
         details={"revert-commit zone: done": "no git backend, revert the bump by hand"}),
)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_execute(case: Case) -> None:
    fakes = Fakes(case.fail)
    outcomes = execute(plan_of(*case.steps), desired(), fakes.backends(case.without), NOW,
                       parallel=1)
    assert [label(o) for o in outcomes] == list(case.outcomes)
    assert fakes.log == list(case.calls)
    by_label = {label(o): o for o in outcomes}
    for key, fragment in case.details.items():
        assert fragment in by_label[key].detail, (key, by_label[key].detail)


RUN_STEP = (
    ("done", None, "done", "terraform applied (1 outputs)", None),
    ("temporary error", TemporaryError("state lock held", 42.0), "retry", "state lock held",
     42.0),
    ("permanent error", PermanentError("invalid variable size"), "failed",
     "invalid variable size", None),
    ("any adapter error", AdapterError("unexpected answer"), "failed", "unexpected answer",
     None),
)


@pytest.mark.parametrize(("error", "status", "detail", "retry_after"),
                         [r[1:] for r in RUN_STEP], ids=[r[0] for r in RUN_STEP])
def test_run_step(error: AdapterError | None, status: str, detail: str,
                  retry_after: float | None) -> None:
    fakes = Fakes({"terraform": {"c1": error}} if error else {})
    step = cell("terraform-apply", "c1")
    outcome = run_step(step, desired(), fakes.backends(), NOW)
    assert (outcome.step, outcome.status, outcome.detail, outcome.retry_after) == (
        step, status, detail, retry_after)
    assert outcome.to_json() == {"step": step.id, "status": status, "detail": detail,
                                 "retryAfter": retry_after}


STOPS = (
    ("stopped before the tick: the first wave-level step is skipped, nothing runs",
     (bake("canary"), revert("zone"), cell("terraform-apply", "c1")), 0,
     ("bake canary: skipped",), ()),
    ("stopped before the tick: each cell's first step is skipped, nothing runs",
     (cell("terraform-apply", "c1"), cell("kubernetes-apply", "c1"),
      cell("terraform-apply", "a1")), 0,
     ("terraform-apply c1: skipped", "terraform-apply a1: skipped"), ()),
    ("stopped during a wave-level step: the next is skipped, no cell starts",
     (bake("canary"), revert("zone"), cell("terraform-apply", "c1")), 1,
     ("bake canary: done", "revert-commit zone: skipped"),
     ("progress.start_bake app canary 1.1.0",)),
    ("stopped during a cell's step: its next step is skipped",
     (cell("terraform-apply", "c1"), cell("kubernetes-apply", "c1")), 1,
     ("terraform-apply c1: done", "kubernetes-apply c1: skipped"),
     ("terraform.apply c1 app 1.1.0",)),
)


@pytest.mark.parametrize(("steps", "stop_after", "outcomes", "calls"),
                         [s[1:] for s in STOPS], ids=[s[0] for s in STOPS])
def test_should_stop(steps: tuple[Step, ...], stop_after: int, outcomes: tuple[str, ...],
                     calls: tuple[str, ...]) -> None:
    fakes = Fakes()
    out = execute(plan_of(*steps), desired(), fakes.backends(), NOW, parallel=1,
                  should_stop=lambda: len(fakes.log) >= stop_after)
    assert [label(o) for o in out] == list(outcomes)
    assert fakes.log == list(calls)
    assert all(o.detail == "shutting down" for o in out if o.status == "skipped")


class RendezvousTerraform(FakeTerraform):
    """Fake Terraform backend (unit tests only) whose applies wait until ``parties`` of
    them run at once: it only succeeds when cells really run in parallel."""

    def __init__(self, log: list[str], parties: int) -> None:
        super().__init__(log)
        self.barrier = threading.Barrier(parties, timeout=10)

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, object]:
        self.barrier.wait()
        return super().apply(desired, cell, service, version)


def test_cells_run_in_parallel_each_in_order_after_the_wave_level_steps() -> None:
    fakes = Fakes()
    fakes.terraform = RendezvousTerraform(fakes.log, parties=4)
    cells = ("c1", "a1", "b1", "r1")
    steps = [bake("canary")] + [cell(k, c) for c in cells
                                for k in ("terraform-apply", "kubernetes-apply")]
    outcomes = execute(plan_of(*steps), desired(), fakes.backends(), NOW, parallel=4)
    assert [label(o) for o in outcomes] == ["bake canary: done"] + [
        f"{k} {c}: done" for c in cells for k in ("terraform-apply", "kubernetes-apply")]
    assert fakes.log[0] == "progress.start_bake app canary 1.1.0"
    for c in cells:
        mine = [e for e in fakes.log if f" {c} " in e]
        assert mine == [f"terraform.apply {c} app 1.1.0", f"kubernetes.apply {c} app 1.1.0"]


def test_kubernetes_apply_gets_the_terraform_outputs_of_the_cell() -> None:
    fakes = Fakes()
    d = desired()
    fakes.terraform.record(d, "c1", "app", "1.1.0")
    execute(plan_of(cell("kubernetes-apply", "c1")), d, fakes.backends(), NOW)
    assert fakes.kubernetes.outputs_seen == {"c1": {"queue_url": "https://queue.c1.example"}}



def test_revert_commits_the_groups_the_step_names() -> None:
    fakes = Fakes()
    execute(plan_of(revert("zone")), desired(), fakes.backends(), NOW)
    assert fakes.git.reverts == [Revert("app", ("zone-a", "zone-b", "rest"), "1.1.0",
                                        "a1 is Degraded on 1.1.0")]


def test_forget_failure_clears_the_wave_s_failure() -> None:
    fakes = Fakes()
    fakes.progress.record_failure("app", "zone", "1.1.0", "a1 is Degraded on 1.1.0")
    step = Step(StepKind.FORGET_FAILURE, "app", "zone", 1, None, "1.1.0")
    outcomes = execute(plan_of(step), desired(), fakes.backends(), NOW)
    assert [(o.status, o.detail) for o in outcomes] == [
        ("done", "failure of 1.1.0 in wave zone forgotten (its revert is desired)")]
    assert fakes.progress.rollout()["app"]["zone"].failed_version is None


def test_an_unexpected_error_fails_that_cell_only() -> None:
    """A template that does not render (here: a KeyError from the backend) is that step's
    failed outcome; the tick goes on and the other cells' steps run."""
    fakes = Fakes({"kubernetes": {"c1": KeyError("verison")}})
    steps = (cell("kubernetes-apply", "c1"), cell("kubernetes-apply", "a1"))
    outcomes = execute(plan_of(*steps), desired(), fakes.backends(), NOW, parallel=1)
    assert [(o.step.cell, o.status) for o in outcomes] == [("c1", "failed"), ("a1", "done")]
    assert outcomes[0].detail == "KeyError: 'verison'"


class CountingTerraform(FakeTerraform):
    """Fake Terraform backend (unit tests only) that counts how many applies overlap."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.running = self.most = 0
        self.lock = threading.Lock()

    def apply(self, desired: DesiredState, cell: Cell, service: str,
              version: str) -> Mapping[str, object]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        threading.Event().wait(0.1)
        with self.lock:
            self.running -= 1
        return super().apply(desired, cell, service, version)


def test_every_due_cell_runs_at_once_without_a_fixed_cap() -> None:
    """The planner bounds the due cells by each wave's budget; the executor runs them
    all at once (the barrier needs all four) — no fixed pool of eight in the way."""
    fakes = Fakes()
    fakes.terraform = RendezvousTerraform(fakes.log, parties=4)
    steps = [cell("terraform-apply", c) for c in ("c1", "a1", "b1", "r1")]
    out = execute(plan_of(*steps), desired(), fakes.backends(), NOW,
                  limits=Limits(cells=4, terraform=4))
    assert [o.status for o in out] == ["done"] * 4


def test_a_backend_limit_bounds_its_steps_across_cells() -> None:
    fakes = Fakes()
    counting = CountingTerraform(fakes.log)
    fakes.terraform = counting
    cells = ("c1", "a1", "b1", "r1")
    steps = [cell(k, c) for c in cells for k in ("terraform-apply", "kubernetes-apply")]
    out = execute(plan_of(*steps), desired(), fakes.backends(), NOW,
                  limits=Limits(cells=4, terraform=2))
    assert [o.status for o in out] == ["done"] * 8
    assert counting.most == 2


def test_limits_refuse_zero() -> None:
    with pytest.raises(ValueError, match=r"concurrency\.terraform"):
        Limits(terraform=0)


# -- sharded replicas: each its own cells, the wave-level steps on one -----------------

OWNERS = {"c1": "r1", "a1": "r2", "b1": "r1", "r1": "r2"}


def _mine(replica: str, leader: str = "r1") -> Callable[[str | None], bool]:
    return lambda c: replica == leader if c is None else OWNERS[c] == replica


@pytest.mark.parametrize(("replica", "ran"), [
    ("r1", ["bake canary: done", "kubernetes-apply c1: done", "kubernetes-apply b1: done"]),
    ("r2", ["kubernetes-apply a1: done", "kubernetes-apply r1: done"]),
    ("r3", [])])
def test_a_replica_runs_its_own_cells_and_only_the_leader_the_wave_level_steps(
        replica: str, ran: list[str]) -> None:
    steps = [bake("canary")] + [cell("kubernetes-apply", c) for c in OWNERS]
    outcomes = execute(plan_of(*steps), desired(), Fakes().backends(), NOW,
                       mine=_mine(replica))
    assert [label(o) for o in outcomes] == ran


@pytest.mark.parametrize(("replica", "ran"), [
    ("r1", ["revert-commit zone: done", "rollback a1: done", "rollback b1: done"]),
    ("r2", [])])
def test_a_failing_wave_is_rolled_back_by_the_replica_committing_its_revert(
        replica: str, ran: list[str]) -> None:
    """r2 owns a1 but does not roll it back: rolled back before the revert is committed,
    the cell would hide the failure from the plan of the replica that commits it."""
    steps = [cell("rollback", "a1", frm="1.1.0", to="1.0.0"),
             cell("rollback", "b1", frm="1.1.0", to="1.0.0"), revert("zone")]
    outcomes = execute(plan_of(*steps), desired(), Fakes().backends(), NOW,
                       mine=_mine(replica))
    assert [label(o) for o in outcomes] == ran
