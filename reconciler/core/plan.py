"""The plan: ordered steps with their gates, holds, refusals and warnings.

Owns: the vocabulary of step kinds (``StepKind``), gate kinds (``GateKind``) and wave
states, the single documented sort key of steps, and the JSON form validated by
``schemas/plan.schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from reconciler.core.live import format_time
from reconciler.core.model import API_VERSION


class StepKind(StrEnum):
    """What a step does. Declared in the order they run for one cell (the sort key's second
    field): a member compares and serialises as its plain string value."""

    ROLLBACK = "rollback"
    MIGRATION_ROLLBACK = "migration-rollback"
    TERRAFORM_APPLY = "terraform-apply"
    MIGRATION_EXPAND = "migration-expand"
    KUBERNETES_APPLY = "kubernetes-apply"
    WAIT_HEALTHY = "wait-healthy"
    #: shadow: the cell's requests are mirrored to the new colour (no weight yet).
    TRAFFIC_MIRROR = "traffic-mirror"
    #: canary: the new colour takes the step's weight of the cell's requests.
    TRAFFIC_WEIGHT = "traffic-weight"
    #: blueGreen: the cell's Services switch to the new colour (it is healthy); canary:
    #: its last step (100%), the new colour serves.
    TRAFFIC_SWITCH = "traffic-switch"
    BAKE = "bake"
    #: blueGreen: the old colour is scaled to zero once the wave has baked.
    SCALE_DOWN = "scale-down"
    MIGRATION_CONTRACT = "migration-contract"
    REVERT_COMMIT = "revert-commit"
    #: The revert reached the desired state: forget the wave's failure, so a person may
    #: release the version again.
    FORGET_FAILURE = "forget-failure"


_KIND_ORDER = {k: i for i, k in enumerate(StepKind)}


class GateKind(StrEnum):
    """What a step waits for. ``none`` means nothing: the step is due now."""

    NONE = "none"
    WAVE_BAKED = "wave-baked"
    BAKE_TIME = "bake-time"
    MAX_UNAVAILABLE = "max-unavailable"
    MIGRATION_EXPANDED = "migration-expanded"
    MIGRATION_IN_FLIGHT = "migration-in-flight"
    OLD_SHAPE_IN_USE = "old-shape-in-use"
    SOAK = "soak"
    HEALTHY = "healthy"
    ALARM = "alarm"
    TIME_WINDOW = "time-window"
    PREVIOUS_STEP = "previous-step"
    #: The cell's live state could not be read in full (e.g. its database): held alone.
    CELL_FAULT = "cell-fault"
    #: A flag variant's ``requires`` is not met in the cell, or a flag turns off there
    #: before the version it needs leaves (``planner/flags.py``).
    FLAG_REQUIREMENT = "flag-requirement"
    #: A baseline analysis of the wave's cells has too few samples yet: it waits.
    ANALYSIS = "analysis"
    #: canary/shadow: the current step's pause (or the shadow phase) has time left.
    PAUSE = "pause"


#: The state of one wave of one service.
WAVE_STATES = ("done", "baking", "in-progress", "pending", "held", "failed", "rolling-back",
               "idle")


@dataclass(frozen=True, slots=True)
class Gate:
    """What stands in front of a step; ``open`` when nothing does."""

    kind: GateKind = GateKind.NONE
    reason: str = ""

    @property
    def open(self) -> bool:
        return self.kind == GateKind.NONE

    def to_json(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "reason": self.reason}


OPEN = Gate()


class Step(NamedTuple):
    """One action for the executor. ``due`` steps may run now; the rest show what is next.

    Sort key (the only one): (wave index, kind order, cell, service, migration).
    Rollback steps use wave index -1 so they come first.

    An immutable NamedTuple rather than a frozen dataclass: large plans hold ~100,000
    steps and a tuple builds five times faster (see docs/benchmarks.md).
    """

    kind: StepKind
    service: str
    wave: str | None
    wave_index: int
    cell: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    migration: str | None = None
    database: str | None = None
    gate: Gate = OPEN
    detail: str = ""
    #: The cell groups a ``revert-commit`` sets back in Git (decided here, not by the
    #: executor); empty for every other kind.
    groups: tuple[str, ...] = ()
    #: ``traffic-weight``: the canary's share in percent it sets; None otherwise.
    weight: int | None = None

    @property
    def due(self) -> bool:
        return self.gate.open

    @property
    def id(self) -> str:
        parts = [self.kind, self.service, self.wave or "-", self.cell or "-",
                 self.migration or "-", self.to_version or "-"]
        if self.weight is not None:
            parts.append(f"{self.weight}%")
        return "/".join(parts)

    def sort_key(self) -> tuple[int, int, str, str, str]:
        return (self.wave_index, _KIND_ORDER[self.kind], self.cell or "",
                self.service, self.migration or "")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; ``groups`` only when there are some (revert commits)."""
        out: dict[str, Any] = {
            "id": self.id, "kind": str(self.kind), "service": self.service,
            "wave": self.wave, "cell": self.cell, "fromVersion": self.from_version,
            "toVersion": self.to_version, "migration": self.migration,
            "database": self.database, "gate": self.gate.to_json(), "due": self.due,
            "detail": self.detail,
        }
        if self.groups:
            out["groups"] = list(self.groups)
        if self.weight is not None:
            out["weight"] = self.weight
        return out


@dataclass(frozen=True)
class Hold:
    """A bump that may not proceed yet, and why (holds do not fail the plan)."""

    service: str
    wave: str
    groups: tuple[str, ...]
    version: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "wave": self.wave, "groups": list(self.groups),
                "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class Refusal:
    """A change refused as unsafe, and why (the CLI exits 3)."""

    service: str
    cell: str
    from_version: str | None
    to_version: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "cell": self.cell, "fromVersion": self.from_version,
                "toVersion": self.to_version, "reason": self.reason}


@dataclass(frozen=True)
class PlanWarning:
    """Something legal but risky in the desired state (e.g. a canary over 10% of weight)."""

    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class CellPlan:
    """One cell of one wave: where it is and where it is going."""

    cell: str
    live_version: str | None
    target_version: str | None
    health: str
    action: str  # "none" | "upgrade" | "rollback" | "install" | "held" | "refused"

    def to_json(self) -> dict[str, Any]:
        return {"cell": self.cell, "liveVersion": self.live_version,
                "targetVersion": self.target_version, "health": self.health,
                "action": self.action}


@dataclass(frozen=True)
class WavePlan:
    """One wave of one service."""

    service: str
    wave: str
    index: int
    state: str
    weight_percent: float
    cells: tuple[CellPlan, ...]
    bake_remaining_seconds: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "wave": self.wave, "index": self.index,
                "state": self.state, "weightPercent": round(self.weight_percent, 2),
                "bakeRemainingSeconds": self.bake_remaining_seconds, "reason": self.reason,
                "cells": [c.to_json() for c in self.cells]}


@dataclass(frozen=True)
class Plan:
    """The whole fleet-wide plan for one desired revision, live snapshot and instant."""

    revision: str
    generated_at: datetime
    waves: tuple[WavePlan, ...]
    steps: tuple[Step, ...]
    holds: tuple[Hold, ...]
    refusals: tuple[Refusal, ...]
    warnings: tuple[PlanWarning, ...]

    def due_steps(self) -> tuple[Step, ...]:
        """Steps whose gates are open, in execution order."""
        return tuple(s for s in self.steps if s.due)

    def is_noop(self) -> bool:
        """True when nothing is left to do (holds and refusals aside)."""
        return not self.steps

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (valid against schemas/plan.schema.json), deterministic."""
        kinds: dict[str, int] = {}
        for s in self.steps:
            kinds[str(s.kind)] = kinds.get(str(s.kind), 0) + 1
        return {
            "apiVersion": API_VERSION, "kind": "Plan", "revision": self.revision,
            "generatedAt": format_time(self.generated_at),
            "summary": {"steps": len(self.steps), "due": len(self.due_steps()),
                        "holds": len(self.holds), "refusals": len(self.refusals),
                        "warnings": len(self.warnings),
                        "byKind": dict(sorted(kinds.items()))},
            "waves": [w.to_json() for w in self.waves],
            "steps": [s.to_json() for s in self.steps],
            "holds": [h.to_json() for h in self.holds],
            "refusals": [r.to_json() for r in self.refusals],
            "warnings": [w.to_json() for w in self.warnings],
        }
