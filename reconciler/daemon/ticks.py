"""Watching a running daemon's ticks from the same process.

Owns: a tick listener that keeps every report and lets a caller wait until a condition
holds for a report (the demo narrates the daemon's work this way; the e2e tests assert
on it). It only observes: the daemon runs exactly as ``reconciler run`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from reconciler.core.plan import StepKind
from reconciler.engine.executor import Outcome, OutcomeStatus
from reconciler.engine.tick import TickReport

Condition = Callable[[TickReport], bool]


class TickWatch:
    """A tick listener (``Daemon.tick_listeners``) with waits over its reports."""

    def __init__(self, on_report: Callable[[TickReport], None] | None = None) -> None:
        self.reports: list[TickReport] = []
        self.on_report = on_report
        self._cond = threading.Condition()

    def __call__(self, report: TickReport) -> None:
        if self.on_report is not None:
            self.on_report(report)
        with self._cond:
            self.reports.append(report)
            self._cond.notify_all()

    @property
    def outcomes(self) -> list[Outcome]:
        """Every outcome seen so far, in order."""
        return self.outcomes_since(0)

    def outcomes_since(self, mark: int) -> list[Outcome]:
        """The outcomes of the reports from ``mark`` on, in order."""
        with self._cond:
            return [o for r in self.reports[mark:] for o in r.outcomes]

    def mark(self) -> int:
        """A position: ``wait(..., since=mark)`` looks only at later reports."""
        with self._cond:
            return len(self.reports)

    def wait(self, until: Condition, timeout: float, since: int | None = None) -> TickReport:
        """The first report from ``since`` (default: from now) for which ``until`` holds;
        TimeoutError with the last plan's summary after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.reports) if since is None else since
            while True:
                for report in self.reports[seen:]:
                    if until(report):
                        return report
                seen = len(self.reports)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"not reached in {timeout:.0f}s; {self._last()}")
                self._cond.wait(left)

    def _last(self) -> str:
        if not self.reports:
            return "no tick yet"
        last = self.reports[-1]
        if last.plan is None:
            return f"last tick not planned ({last.snapshot_error or last.errors})"
        return f"last plan: {last.plan.to_json()['summary']}"


def settled(report: TickReport) -> bool:
    """Nothing left to do: a plan with no steps and nothing run."""
    return report.plan is not None and not report.plan.steps and not report.outcomes


def ran(kind: StepKind, cell: str | None = None) -> Condition:
    """A report where a step of ``kind`` (in ``cell``) was done."""
    def check(report: TickReport) -> bool:
        return any(o.step.kind == kind and o.status == OutcomeStatus.DONE and
                   (cell is None or o.step.cell == cell) for o in report.outcomes)
    return check
