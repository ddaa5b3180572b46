"""The live snapshot: what is running now, as the planner reads it.

Owns: the typed shape of ``schemas/live.schema.json`` and its conversion from and to
plain JSON values. Adapters build the parts (Kubernetes workloads, Terraform state,
migration ledgers, alarms); the daemon adds rollout progress read from Git status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from reconciler.core.model import API_VERSION
from reconciler.core.versions import Version

HEALTH_STATES = ("Healthy", "Progressing", "Degraded", "Missing", "Unknown")
MIGRATION_PHASES = ("expanded", "contracted", "rolled-back")


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 text to an aware UTC datetime (None stays None)."""
    if text is None:
        return None
    return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).astimezone(UTC)


def format_time(t: datetime | None) -> str | None:
    """An aware datetime to RFC 3339 with a ``Z`` suffix, second precision."""
    if t is None:
        return None
    return t.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _version(text: str | None) -> Version | None:
    return Version.parse(text) if text else None


@dataclass(frozen=True)
class Drift:
    """One out-of-band change: which object, which field, who changed it."""

    kind: str
    name: str
    field: str
    manager: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "field": self.field,
                "manager": self.manager, "message": self.message}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Drift:
        return Drift(d["kind"], d["name"], d["field"], d.get("manager", ""),
                     d.get("message", ""))


@dataclass(frozen=True)
class TerraformLive:
    """A cell's Terraform workspace for one service."""

    applied_hash: str | None
    drifted: bool = False
    outputs: Mapping[str, Any] = field(default_factory=dict)  # never sensitive values

    def to_json(self) -> dict[str, Any]:
        return {"appliedHash": self.applied_hash, "drifted": self.drifted,
                "outputs": dict(sorted(self.outputs.items()))}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> TerraformLive:
        return TerraformLive(d.get("appliedHash"), bool(d.get("drifted", False)),
                             dict(d.get("outputs", {})))


@dataclass(frozen=True)
class Standby:
    """A blue-green service's colour that does not serve: its version and health, and
    whether it was scaled to zero (docs/strategies.md)."""

    colour: str
    version: Version
    health: str
    scaled_down: bool = False
    message: str = ""
    #: canary: its share of the cell's requests (percent); shadow: mirrored to it; since
    #: when (sub-second precision: a pause ends on time).
    weight: int = 0
    mirror: bool = False
    since: datetime | None = None

    @property
    def has_traffic(self) -> bool:
        """It takes a share of the requests or a mirror of them."""
        return self.weight > 0 or self.mirror

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"colour": self.colour, "version": str(self.version),
                               "health": self.health, "scaledDown": self.scaled_down,
                               "message": self.message}
        if self.weight or self.mirror or self.since:
            out.update(weight=self.weight, mirror=self.mirror,
                       since=self.since.isoformat() if self.since else None)
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Standby:
        return Standby(str(d["colour"]), Version.parse(d["version"]), str(d["health"]),
                       bool(d.get("scaledDown", False)), str(d.get("message", "")),
                       int(d.get("weight") or 0), bool(d.get("mirror")),
                       parse_time(d.get("since")))


@dataclass(frozen=True)
class ServiceLive:
    """One service in one cell: running version, health, rollback target, drift."""

    version: Version | None
    health: str = "Unknown"
    previous_version: Version | None = None
    applied_hash: str | None = None
    drift: tuple[Drift, ...] = ()
    terraform: TerraformLive | None = None
    message: str = ""
    #: blueGreen: the colour that does not serve (None: rolling, or only one colour).
    standby: Standby | None = None

    def to_json(self) -> dict[str, Any]:
        out = self._json()
        if self.standby is not None:
            out["standby"] = self.standby.to_json()
        return out

    def _json(self) -> dict[str, Any]:
        return {
            "version": str(self.version) if self.version else None,
            "health": self.health,
            "previousVersion": str(self.previous_version) if self.previous_version else None,
            "appliedHash": self.applied_hash,
            "drift": [d.to_json() for d in self.drift],
            "terraform": self.terraform.to_json() if self.terraform else None,
            "message": self.message,
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> ServiceLive:
        tf = d.get("terraform")
        return ServiceLive(
            version=_version(d.get("version")),
            health=d.get("health", "Unknown"),
            previous_version=_version(d.get("previousVersion")),
            applied_hash=d.get("appliedHash"),
            drift=tuple(Drift.from_json(x) for x in d.get("drift", [])),
            terraform=TerraformLive.from_json(tf) if tf else None,
            message=d.get("message", ""),
            standby=Standby.from_json(d["standby"]) if d.get("standby") else None,
        )


@dataclass(frozen=True)
class MigrationLive:
    """A migration's last recorded phase in one database ledger."""

    phase: str  # one of MIGRATION_PHASES
    at: datetime | None = None
    checksum: str = ""


@dataclass(frozen=True)
class MigrationRead:
    """What the migration ledgers say, and the cells whose databases could not be read."""

    phases: Mapping[str, Mapping[str, Mapping[str, MigrationLive]]]  # cell -> db -> id
    faults: Mapping[str, str] = field(default_factory=dict)  # cell -> reason


@dataclass(frozen=True)
class WaveProgress:
    """Rollout progress of one service in one wave, recorded in Git status."""

    version: Version
    bake_started_at: datetime | None = None
    failed_version: Version | None = None  # a version that failed here, until reverted
    failure_reason: str = ""
    #: The revert of ``failed_version`` is committed but has not reached the remote yet:
    #: the failure stays on record (should the revert not replay on the remote's new
    #: head, it must still hold the version back), so it is not forgotten meanwhile.
    revert_pending: bool = False


@dataclass(frozen=True)
class AlarmState:
    """The last evaluation of an alarm rule for one cell."""

    rule: str
    cell: str
    firing: bool
    value: float | None = None
    threshold: float | None = None
    samples: int = 0
    #: Not decided yet (a baseline comparison without enough samples on either side):
    #: the cell's wave does not finish its bake while an alarm of it is pending.
    pending: bool = False
    #: A baseline comparison's numbers and decision, for logs, status and commits.
    detail: str = ""


@dataclass(frozen=True)
class LiveSnapshot:
    """Everything the planner knows about the running fleet."""

    services: Mapping[str, Mapping[str, ServiceLive]] = field(default_factory=dict)  # cell->svc
    databases: Mapping[str, Mapping[str, Mapping[str, MigrationLive]]] = field(
        default_factory=dict)  # cell -> database -> migration id -> phase
    rollout: Mapping[str, Mapping[str, WaveProgress]] = field(
        default_factory=dict)  # service -> wave -> progress
    alarms: tuple[AlarmState, ...] = ()
    #: cell -> why its live state could not be read in full (its database unreachable, ...):
    #: the planner holds that cell alone, the rest of the fleet proceeds.
    faults: Mapping[str, str] = field(default_factory=dict)

    def service(self, cell: str, service: str) -> ServiceLive | None:
        """The live state of ``service`` in ``cell``, None when nothing is deployed."""
        return self.services.get(cell, {}).get(service)

    def migration_phase(self, cell: str, database: str, migration: str) -> str | None:
        """The recorded phase of ``migration`` in the cell's ``database`` ledger."""
        m = self.databases.get(cell, {}).get(database, {}).get(migration)
        return m.phase if m else None

    def with_rollout(self, rollout: Mapping[str, Mapping[str, WaveProgress]]) -> LiveSnapshot:
        """A copy with rollout progress replaced."""
        return replace(self, rollout=rollout)

    def firing(self, cells: set[str]) -> tuple[AlarmState, ...]:
        """Alarms firing now for any of ``cells`` (or fleet-wide, cell ``*``)."""
        return tuple(a for a in self.alarms if a.firing and (a.cell in cells or a.cell == "*"))

    def waiting(self, cells: set[str]) -> tuple[AlarmState, ...]:
        """Alarms not decided yet (too few samples) for any of ``cells``."""
        if not self._any_pending:
            return ()
        return tuple(a for a in self.alarms if a.pending and a.cell in cells)

    @cached_property
    def _any_pending(self) -> bool:
        return any(a.pending for a in self.alarms)


def _progress_json(p: WaveProgress) -> dict[str, Any]:
    out: dict[str, Any] = {"version": str(p.version),
                           "bakeStartedAt": format_time(p.bake_started_at)}
    if p.failed_version is not None:
        out["failedVersion"] = str(p.failed_version)
        out["failureReason"] = p.failure_reason
    if p.revert_pending:
        out["revertPending"] = True
    return out


def _progress(d: Mapping[str, Any]) -> WaveProgress:
    return WaveProgress(Version.parse(d["version"]), parse_time(d.get("bakeStartedAt")),
                        _version(d.get("failedVersion")), d.get("failureReason", ""),
                        bool(d.get("revertPending", False)))


def _alarm_json(a: AlarmState) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": a.rule, "cell": a.cell, "firing": a.firing,
                           "value": a.value, "threshold": a.threshold, "samples": a.samples}
    if a.pending:
        out["pending"] = True
    if a.detail:
        out["detail"] = a.detail
    return out


def snapshot_to_json(snap: LiveSnapshot) -> dict[str, Any]:
    """The snapshot as plain JSON (valid against schemas/live.schema.json), sorted."""
    cells: dict[str, Any] = {}
    for cell in sorted(set(snap.services) | set(snap.databases) | set(snap.faults)):
        cells[cell] = {
            "services": {s: v.to_json() for s, v in sorted(snap.services.get(cell, {}).items())},
            "databases": {
                db: {"migrations": {mid: {"phase": m.phase, "at": format_time(m.at),
                                          "checksum": m.checksum}
                                    for mid, m in sorted(migs.items())}}
                for db, migs in sorted(snap.databases.get(cell, {}).items())
            },
        }
        if cell in snap.faults:
            cells[cell]["fault"] = snap.faults[cell]
    rollout = {
        svc: {"waves": {w: _progress_json(p) for w, p in sorted(waves.items())}}
        for svc, waves in sorted(snap.rollout.items())
    }
    alarms = [_alarm_json(a) for a in sorted(snap.alarms, key=lambda a: (a.rule, a.cell))]
    return {"apiVersion": API_VERSION, "kind": "LiveSnapshot", "cells": cells,
            "rollout": rollout, "alarms": alarms}


def snapshot_from_json(doc: Mapping[str, Any]) -> LiveSnapshot:
    """Build a snapshot from JSON already validated against live.schema.json."""
    services: dict[str, dict[str, ServiceLive]] = {}
    databases: dict[str, dict[str, dict[str, MigrationLive]]] = {}
    for cell, body in doc.get("cells", {}).items():
        services[cell] = {s: ServiceLive.from_json(v)
                          for s, v in body.get("services", {}).items()}
        databases[cell] = {
            db: {mid: MigrationLive(m["phase"], parse_time(m.get("at")), m.get("checksum", ""))
                 for mid, m in d.get("migrations", {}).items()}
            for db, d in body.get("databases", {}).items()
        }
    rollout = {
        svc: {w: _progress(p) for w, p in body.get("waves", {}).items()}
        for svc, body in doc.get("rollout", {}).items()
    }
    alarms = tuple(AlarmState(a["rule"], a["cell"], bool(a["firing"]), a.get("value"),
                              a.get("threshold"), int(a.get("samples", 0)),
                              bool(a.get("pending", False)), str(a.get("detail", "")))
                   for a in doc.get("alarms", []))
    faults = {cell: str(body["fault"]) for cell, body in doc.get("cells", {}).items()
              if body.get("fault")}
    return LiveSnapshot(services, databases, rollout, alarms, faults)
