"""The machine notices: with one guard of the planner or the daemon removed, the state
machine fails on the invariant that guard protects, with the shortest sequence found.

Each case monkeypatches one guard out and runs the machine deterministically
(``derandomize``) for a bounded number of examples, over the events that matter to that
guard (the same machine, world and invariants; only the search is narrowed so that a
bounded run finds the sequence every time).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RULE_MARKER, initialize, run_state_machine_as_test

from reconciler.adapters.git.revert import LocalGit
from reconciler.core import planner
from reconciler.core.model import DesiredState
from reconciler.core.plan import OPEN, Step, StepKind
from reconciler.core.planner import cells, gates, migrations, rollback
from reconciler.daemon.sources import GitSource
from reconciler.engine import handlers
from reconciler.engine.backends import Backends
from reconciler.engine.tick import TickReport
from tests.model import invariants as inv
from tests.model.machine import LoopMachine
from tests.model.repo import FleetOptions
from tests.model.world import World

Patch = Callable[[pytest.MonkeyPatch], None]


def _no_earlier_wave_gate(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(gates, "earlier_waves_gate", lambda *a, **k: OPEN)


def _no_max_unavailable(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(planner, "_slots", lambda view: 1_000)


def _no_remembered_failure(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(planner, "_remembered_failure", lambda views: None)


def _revert_not_idempotent(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(LocalGit, "already_reverted", lambda self, *a: None)


def _no_expand_before_apply(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(cells, "expand_steps", lambda *a: [])


def _no_contract_gate(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(migrations, "_fleet_contract_gate", lambda *a: OPEN)


def _no_contracted_floor(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(rollback, "floor_refusal", lambda *a: None)


def _heal_while_failing(mp: pytest.MonkeyPatch) -> None:
    """The failure path plans the steady (heal) steps of its cells too."""
    original = planner._plan_failure

    def leaky(desired: DesiredState, live: Any, views: Any, failure: Any, service: str,
              now: datetime, acc: Any) -> None:
        original(desired, live, views, failure, service, now, acc)
        for view in views:
            for c in view.managed:
                if c.at_target:
                    acc.steps += cells.steady_steps(desired, c, view, service,
                                                    desired.fleet.self_heal)
    mp.setattr(planner, "_plan_failure", leaky)


def _status_only_after_progress(mp: pytest.MonkeyPatch) -> None:
    """Status is written only for ticks that ran steps (a quiet tick no longer does)."""
    original = GitSource.publish

    def publish(self: GitSource, report: TickReport) -> None:
        if report.outcomes:
            original(self, report)
        else:
            self.flush()
    mp.setattr(GitSource, "publish", publish)


def _bake_start_leaks_state(mp: pytest.MonkeyPatch) -> None:
    """A bake start drifts with state kept across runs (a counter no run resets)."""
    original, drift = handlers.bake, itertools.count(1)

    def bake(step: Step, desired: DesiredState, b: Backends, now: datetime) -> str:
        return original(step, desired, b, now + timedelta(seconds=next(drift)))
    mp.setitem(handlers.HANDLERS, StepKind.BAKE, bake)


@dataclass(frozen=True)
class Guard:
    name: str
    invariant: str
    remove: Patch
    #: The machine's rules the search is narrowed to.
    rules: tuple[str, ...]
    options: FleetOptions = field(default_factory=FleetOptions)
    examples: int = 30
    #: Shrink the sequence found to the shortest (cheap cases only: shrinking re-runs the
    #: machine hundreds of times; the others report the sequence as found).
    shrink: bool = False
    #: Run to convergence at the end (only invariants 6 and 7 need it).
    converge: bool = False
    replay: bool = False


CORE = ("bump_all", "tick", "time_passes")
GUARDS = (
    Guard("earlier waves baked (gates.earlier_waves_gate)", inv.WAVES_IN_ORDER,
          _no_earlier_wave_gate, CORE, shrink=True),
    Guard("maxUnavailable slots (planner._slots)", inv.MAX_UNAVAILABLE,
          _no_max_unavailable, CORE, shrink=True),
    Guard("a remembered failure holds the version (planner._remembered_failure)",
          inv.FAILED_STAYS_REVERTED, _no_remembered_failure,
          ("bump_all", "invalid_revision", "cell_degraded"), examples=90),
    Guard("a revert is committed once (LocalGit.already_reverted)",
          inv.FAILED_STAYS_REVERTED, _revert_not_idempotent,
          ("bump_all", "invalid_revision", "cell_degraded"), examples=90),
    Guard("expand before the apply (cells.expand_steps)", inv.MIGRATIONS_SAFE,
          _no_expand_before_apply, ("bump_with_migration", "tick", "time_passes"),
          shrink=True),
    Guard("contract after the old shape is gone (migrations._fleet_contract_gate)",
          inv.MIGRATIONS_SAFE, _no_contract_gate, ("bump_with_migration", "tick",
                                                   "time_passes")),
    Guard("no rollback below a contracted floor (rollback.floor_refusal)",
          inv.MIGRATIONS_SAFE, _no_contracted_floor,
          ("bump_with_migration", "human_revert", "time_passes"), examples=80),
    Guard("the failure path plans no heal (planner._plan_failure)",
          inv.NO_HEAL_TOWARD_ROLLBACK, _heal_while_failing, ("bump_all", "broken_by_hand"),
          examples=80),
    Guard("a quiet tick publishes status (GitSource.publish)", inv.CONVERGES,
          _status_only_after_progress, CORE, converge=True),
    Guard("bake starts come from the tick's clock (handlers.bake)", inv.DETERMINISTIC,
          _bake_start_leaks_state, CORE, examples=10, converge=True, replay=True),
)


def focused(guard: Guard) -> type[LoopMachine]:
    """The machine with only ``guard.rules`` (the others hidden) and fixed fleet options."""
    options = guard.options

    class Focused(LoopMachine):
        replay, converge = guard.replay, guard.converge

        @initialize()
        def start(self) -> None:
            self.world = World(self.tmp / "run", options)

    for name, value in vars(LoopMachine).items():
        if hasattr(value, RULE_MARKER) and name not in guard.rules:
            setattr(Focused, name, None)
    Focused.__name__ = Focused.__qualname__ = "LoopMachine"
    return Focused


@pytest.mark.parametrize("guard", GUARDS, ids=[g.name for g in GUARDS])
def test_the_machine_notices_a_broken_guard(guard: Guard,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    guard.remove(monkeypatch)
    run = settings(max_examples=guard.examples, stateful_step_count=12, derandomize=True,
                   database=None, deadline=None, report_multiple_bugs=False,
                   phases=[Phase.generate, Phase.shrink] if guard.shrink else [Phase.generate],
                   suppress_health_check=list(HealthCheck))
    with pytest.raises(inv.InvariantViolated, match=f"invariant {guard.invariant}") as e:
        run_state_machine_as_test(focused(guard), settings=run)
    steps = "\n".join(getattr(e.value, "__notes__", []))
    assert "state = LoopMachine()" in steps and "state.teardown()" in steps, steps
