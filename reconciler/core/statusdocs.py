"""The status documents the daemon commits under ``status/``. Pure.

Owns: what ``status/cells/<cell>.yaml``, ``status/rollouts/<service>.yaml`` and
``status/desired.yaml`` say, computed from a plan, the live snapshot it was made from,
the rollout progress and the desired state's errors. Nothing here changes from one tick to
the next unless the fleet changed (no timestamps of the tick itself, no bake countdown),
so an unchanged fleet writes no commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.core.live import LiveSnapshot, WaveProgress, format_time
from reconciler.core.plan import Plan, WavePlan

STATUS_DIR = "status/"


def _cell_entry(live: LiveSnapshot, cell: str, w: WavePlan, health: str,
                version: str | None, target: str | None) -> dict[str, Any]:
    s = live.service(cell, w.service)
    entry: dict[str, Any] = {"version": version, "target": target, "health": health,
                             "wave": w.wave}
    drift = [f"{d.kind}/{d.name} {d.field}" for d in s.drift] if s else []
    if drift:
        entry["drift"] = drift
    if s and s.terraform and s.terraform.drifted:
        entry["terraformDrifted"] = True
    firing = sorted(a.rule for a in live.alarms if a.firing and a.cell == cell)
    if firing:
        entry["alarms"] = firing
    return entry


def cell_documents(plan: Plan, live: LiveSnapshot) -> dict[str, dict[str, Any]]:
    """``status/cells/<cell>.yaml`` for every cell in the plan."""
    cells: dict[str, dict[str, Any]] = {}
    for w in plan.waves:
        for c in w.cells:
            doc = cells.setdefault(c.cell, {"cell": c.cell, "services": {}})
            doc["services"][w.service] = _cell_entry(live, c.cell, w, c.health,
                                                     c.live_version, c.target_version)
    return {f"{STATUS_DIR}cells/{name}.yaml": doc for name, doc in sorted(cells.items())}


def _wave_entry(w: WavePlan, p: WaveProgress | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": w.state}
    if w.reason:
        entry["reason"] = w.reason
    if p is not None:
        entry["version"] = str(p.version)
        if p.bake_started_at is not None:
            entry["bakeStartedAt"] = format_time(p.bake_started_at)
        if p.failed_version is not None:
            entry["failedVersion"] = str(p.failed_version)
            entry["failureReason"] = p.failure_reason
    return entry


def rollout_documents(plan: Plan, progress: Mapping[str, Mapping[str, WaveProgress]],
                      desired_revision: str | None) -> dict[str, dict[str, Any]]:
    """``status/rollouts/<service>.yaml`` for every service in the plan."""
    docs: dict[str, dict[str, Any]] = {}
    for w in plan.waves:
        doc = docs.setdefault(w.service, {"service": w.service, "revision": desired_revision,
                                          "waves": {}})
        doc["waves"][w.wave] = _wave_entry(w, progress.get(w.service, {}).get(w.wave))
    for h in plan.holds:
        if h.service in docs:
            docs[h.service].setdefault("holds", []).append(h.to_json())
    for r in plan.refusals:
        if r.service in docs:
            docs[r.service].setdefault("refusals", []).append(r.to_json())
    return {f"{STATUS_DIR}rollouts/{s}.yaml": d for s, d in sorted(docs.items())}


def desired_document(revision: str | None, last_good: str | None,
                     errors: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``status/desired.yaml``: which revision is live and why a newer one is not."""
    doc: dict[str, Any] = {"revision": revision, "lastGoodRevision": last_good,
                           "valid": not errors}
    if errors:
        doc["errors"] = list(errors)
    return {f"{STATUS_DIR}desired.yaml": doc}


def status_documents(plan: Plan | None, live: LiveSnapshot | None,
                     progress: Mapping[str, Mapping[str, WaveProgress]],
                     revision: str | None, last_good: str | None,
                     errors: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every status document for one tick (cells and rollouts only when planned)."""
    docs = desired_document(revision, last_good, errors)
    if plan is not None and live is not None:
        docs |= cell_documents(plan, live)
        docs |= rollout_documents(plan, progress, last_good)
    return docs
