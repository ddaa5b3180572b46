"""Running the due steps of one plan: wave-level steps first, then cells in parallel."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reconciler.adapters.errors import AdapterError, TemporaryError
from reconciler.core.model import DesiredState
from reconciler.core.plan import Plan, Step, StepKind
from reconciler.engine.backends import Backends
from reconciler.engine.handlers import HANDLERS
from reconciler.engine.limits import Limits, Slots

#: Step kinds that act on Git or on rollout progress rather than on one cell.
SERIAL_KINDS = frozenset({StepKind.REVERT_COMMIT, StepKind.BAKE, StepKind.FORGET_FAILURE})

log = logging.getLogger("reconciler.executor")


class OutcomeStatus(StrEnum):
    """What happened to one step."""

    DONE = "done"
    #: A temporary error: the step runs again on a later tick (after ``retry_after``).
    RETRY = "retry"
    FAILED = "failed"
    #: Not started: the reconciler is shutting down.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    """What happened to one step, with a one-line detail."""

    step: Step
    status: OutcomeStatus
    detail: str
    retry_after: float | None = None

    def to_json(self) -> dict[str, str | float | None]:
        return {"step": self.step.id, "status": str(self.status), "detail": self.detail,
                "retryAfter": self.retry_after}


def run_step(step: Step, desired: DesiredState, backends: Backends, now: datetime) -> Outcome:
    """Run one step; never raises: an adapter error is its outcome, and so is anything
    unexpected (a template that does not render, a bug), so one cell's failure never
    stops the tick for the others."""
    try:
        detail = HANDLERS[step.kind](step, desired, backends, now)
    except TemporaryError as e:
        return Outcome(step, OutcomeStatus.RETRY, str(e), e.retry_after)
    except AdapterError as e:
        return Outcome(step, OutcomeStatus.FAILED, str(e))
    except Exception as e:  # isolation: reported on this step, the tick goes on
        log.exception("step %s raised", step.id)
        return Outcome(step, OutcomeStatus.FAILED, f"{type(e).__name__}: {e}")
    return Outcome(step, OutcomeStatus.DONE, detail)


def _per_cell(steps: Sequence[Step]) -> list[list[Step]]:
    """Due steps grouped by cell, in plan order (one group runs sequentially)."""
    groups: dict[str, list[Step]] = {}
    for s in steps:
        groups.setdefault(s.cell or "", []).append(s)
    return list(groups.values())


def _run_group(group: list[Step], desired: DesiredState, backends: Backends,
               now: datetime, should_stop: Callable[[], bool] = lambda: False,
               slots: Slots | None = None) -> list[Outcome]:
    out = []
    slots = slots or Slots(Limits())
    for step in group:
        if should_stop():
            out.append(Outcome(step, OutcomeStatus.SKIPPED, "shutting down"))
            break
        with slots.hold(step.kind):
            outcome = run_step(step, desired, backends, now)
        out.append(outcome)
        if outcome.status != OutcomeStatus.DONE:
            break
    return out


def _wave_level(due: Sequence[Step]) -> Callable[[Step], bool]:
    """Which due steps only the wave-level owner runs (sharded replicas): the serial
    kinds, and every step of a service whose revert commit is due — its cells are rolled
    back by the replica committing the revert, after it, as one replica would (a cell
    rolled back first would hide the failure from the owner's next plan)."""
    reverting = {s.service for s in due if s.kind == StepKind.REVERT_COMMIT}
    return lambda s: s.kind in SERIAL_KINDS or s.service in reverting


def execute(plan: Plan, desired: DesiredState, backends: Backends, now: datetime,
            parallel: int | None = None, should_stop: Callable[[], bool] = lambda: False,
            limits: Limits | None = None,
            mine: Callable[[str | None], bool] | None = None) -> list[Outcome]:
    """Run every due step of ``plan``; returns outcomes in plan order.

    Every cell with due steps runs at once — the planner gave due steps to as many
    cells as each wave's ``maxUnavailable`` budget allows — up to ``limits.cells``
    (or ``parallel``) threads, each step holding a slot of its backend's limit.
    Once ``should_stop()`` is true no further step starts (running ones finish).
    With ``mine`` (sharded replicas) only the steps of the cells it accepts run, and
    the wave-level steps only when it accepts None."""
    limits = limits or Limits()
    due = [s for s in plan.due_steps() if s.kind != StepKind.WAIT_HEALTHY]
    if mine is not None:
        level = _wave_level(due)
        due = [s for s in due if mine(None if level(s) else s.cell)]
    serial = [s for s in due if s.kind in SERIAL_KINDS]
    cells = [s for s in due if s.kind not in SERIAL_KINDS]
    outcomes: list[Outcome] = []
    for s in serial:
        if should_stop():
            return [*outcomes, Outcome(s, OutcomeStatus.SKIPPED, "shutting down")]
        outcomes.append(run_step(s, desired, backends, now))
    groups = _per_cell(cells)
    if not groups:
        return outcomes
    slots = Slots(limits)
    threads = min(parallel or limits.cells, limits.cells, len(groups))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = pool.map(
            lambda g: _run_group(g, desired, backends, now, should_stop, slots), groups)
        for r in results:
            outcomes.extend(r)
    return outcomes
