"""Failures the state machine found, kept as regression examples and replayed rule by rule.

Each is the sequence of events (the machine's rules, as Hypothesis prints them) that broke
an invariant before its fix. A replay must pass every invariant, converge and replay
identically; with the fix undone (monkeypatched back out) it must fail on the invariant it
broke — so a regression cannot come back unnoticed, and the sequence is known to still
reach the bug.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis.stateful import INVARIANT_MARKER

from reconciler.adapters.git.progress import GitProgressStore
from reconciler.core import planner
from reconciler.core.planner import migrations, rollback
from tests.model import invariants as inv
from tests.model.machine import LoopMachine
from tests.model.repo import FleetOptions

Undo = Callable[[pytest.MonkeyPatch], None]
Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Regression:
    name: str
    #: The invariant the sequence broke before the fix.
    invariant: str
    calls: tuple[Call, ...]
    #: Puts the bug back.
    undo: Undo
    options: FleetOptions = field(default_factory=FleetOptions)


def _bake_not_remembered(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(rollback, "bake_completed", lambda *a: False)


def _unknown_contracted_ignored(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(migrations, "_unknown_contracted", lambda *a: None)


def _rolled_back_cells_fail_again(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(rollback, "_moved_down", lambda c: False)


def _rollback_without_expand(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(rollback, "expand_steps", lambda *a: [])


def _failure_never_forgotten(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(planner, "_forget_steps", lambda views, service: [])


def _failure_forgotten_before_its_revert_is_pushed(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(GitProgressStore, "_revert_queued", lambda self, service: False)


REGRESSIONS = (
    Regression(
        "a cell Degraded long after its wave baked was rolled back and the old bump "
        "reverted (fixture 25)", inv.CONVERGES,
        (("cell_degraded", {"cell": "c1", "then": 5}),),
        _bake_not_remembered),
    Regression(
        "a git revert of the commit adding a contracted migration rolled the fleet back "
        "below it (fixture 26)", inv.MIGRATIONS_SAFE,
        (("bump_with_migration", {"then": 120}), ("time_passes", {"minutes": 30}),
         ("human_revert", {"pick": 0, "then": 5})),
        _unknown_contracted_ignored),
    Regression(
        "a canary set back by a person and then Degraded was 'rolled back' up to the "
        "version it left, past maxUnavailable (fixture 27)", inv.MAX_UNAVAILABLE,
        (("bump_one_group", {"group": "canary", "version": "1.2.0", "then": 120}),
         ("bump_one_group", {"group": "canary", "version": "1.0.0", "then": 5}),
         ("cell_degraded", {"cell": None, "then": 5})),
        _rolled_back_cells_fail_again),
    Regression(
        "a rollback into a migration's requiredBy ran without its expand (fixture 28)",
        inv.MIGRATIONS_SAFE,
        (("bump_all", {"version": "1.5.0", "then": 30}),
         ("kubernetes_api", {"down": True, "then": 0}),
         ("bump_all", {"version": "1.1.0", "then": 0}),
         ("bump_with_migration", {"then": 0}),
         ("kubernetes_api", {"down": False, "then": 5})),
        _rollback_without_expand),
    Regression(
        "a version released again after its revert was reverted at once, with no cell "
        "failing (fixture 29)", inv.FAILED_STAYS_REVERTED,
        (("bump_all", {"version": "1.3.0", "then": 30}),
         ("cell_degraded", {"cell": None, "then": 5}),
         ("bump_all", {"version": "1.3.0", "then": 5})),
        _failure_never_forgotten),
    Regression(
        # Before: adapters/git/remote.py set the whole queue aside when the revert did not
        # replay on a person's edit of the release file, and a failure was forgotten as
        # soon as its revert was desired locally, before it was pushed: the branch was
        # reset to the remote's (still desiring 1.6.0, no failure on record) and the
        # failed version went out again. Now only the conflicting commit is set aside and
        # a failure is kept until its revert reaches the remote; the planner commits the
        # revert again on the new head.
        "a revert set aside on a moved remote let its failed version out again",
        inv.FAILED_STAYS_REVERTED,
        (("bump_all", {"version": "1.6.0", "then": 5}),
         ("git_remote", {"down": True, "then": 0}),
         ("cell_degraded", {"cell": None, "then": 5}),
         ("bump_one_group", {"group": "zone-a", "version": "1.1.0", "then": 0}),
         ("git_remote", {"down": False, "then": 5})),
        _failure_forgotten_before_its_revert_is_pushed),
)


def replay(r: Regression, converge: bool = True) -> None:
    """Run ``r``'s events on a fresh machine, every invariant checked after each."""
    m = LoopMachine()
    m.converge = m.replay = converge
    invariants = [getattr(m, n) for n in dir(LoopMachine)
                  if hasattr(getattr(LoopMachine, n), INVARIANT_MARKER)]
    try:
        m.start(options=r.options)
        for rule, kwargs in r.calls:
            getattr(m, rule)(**kwargs)
            for check in invariants:
                check()
    except BaseException:
        if m.world is not None:
            m.world.close()
        shutil.rmtree(m.tmp, ignore_errors=True)
        raise
    m.teardown()


IDS = [r.name for r in REGRESSIONS]


@pytest.mark.parametrize("r", REGRESSIONS, ids=IDS)
def test_the_sequence_passes(r: Regression) -> None:
    replay(r)


@pytest.mark.parametrize("r", REGRESSIONS, ids=IDS)
def test_the_sequence_fails_without_its_fix(r: Regression,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    r.undo(monkeypatch)
    with pytest.raises(inv.InvariantViolated, match=f"invariant {r.invariant}"):
        replay(r, converge=r.invariant == inv.CONVERGES)
