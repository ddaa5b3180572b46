"""How much of the fleet one tick may run at once.

Owns: the operator's global bounds per backend. How many cells move at once is the
plan's business (each wave's ``maxUnavailable`` budget: only that many cells have due
steps); these limits bound it from above, per kind of work, so a 100% wave of a
thousand cells does not start a thousand Terraform processes on a small host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from reconciler.core.plan import StepKind

#: The backend each step kind occupies while it runs (wave-level steps: none).
BACKEND_OF: dict[StepKind, str] = {
    StepKind.TERRAFORM_APPLY: "terraform",
    StepKind.KUBERNETES_APPLY: "kubernetes",
    StepKind.ROLLBACK: "kubernetes",
    StepKind.TRAFFIC_MIRROR: "kubernetes",
    StepKind.TRAFFIC_WEIGHT: "kubernetes",
    StepKind.TRAFFIC_SWITCH: "kubernetes",
    StepKind.SCALE_DOWN: "kubernetes",
    StepKind.MIGRATION_EXPAND: "databases",
    StepKind.MIGRATION_CONTRACT: "databases",
    StepKind.MIGRATION_ROLLBACK: "databases",
}


@dataclass(frozen=True)
class Limits:
    """Global bounds of one tick's work (each at least 1)."""

    #: Cells whose steps run at once (threads); the wave's budget decides below this.
    cells: int = 64
    #: Kubernetes applies (and rollbacks) at once.
    kubernetes: int = 16
    #: Terraform runs (child processes) at once.
    terraform: int = 8
    #: Migration phases (database connections) at once.
    databases: int = 8

    def __post_init__(self) -> None:
        for name in ("cells", "kubernetes", "terraform", "databases"):
            if getattr(self, name) < 1:
                raise ValueError(f"concurrency.{name} must be at least 1")


class Slots:
    """One semaphore per backend, for the steps of one tick."""

    def __init__(self, limits: Limits) -> None:
        self._sems = {name: threading.BoundedSemaphore(getattr(limits, name))
                      for name in ("kubernetes", "terraform", "databases")}

    @contextmanager
    def hold(self, kind: StepKind) -> Iterator[None]:
        """Hold a slot of the backend ``kind`` uses while the block runs."""
        sem = self._sems.get(BACKEND_OF.get(kind, ""))
        if sem is None:
            yield
            return
        with sem:
            yield
