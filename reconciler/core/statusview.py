"""The fleet at a glance: per service, wave and cell — version, health, bake, alarms, drift.

Owns: the view ``reconciler status`` prints (text and JSON), computed from a plan and the
live snapshot it was made from. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.core import flags
from reconciler.core.live import LiveSnapshot, format_time
from reconciler.core.model import DesiredState
from reconciler.core.phases import Phase, cell_phases
from reconciler.core.plan import Plan, WavePlan
from reconciler.core.planner.waves import human


def _firing(live: LiveSnapshot) -> dict[str, list[str]]:
    """cell → the rules firing for it (one pass: a fleet has an alarm per cell and rule)."""
    out: dict[str, list[str]] = {}
    for a in live.alarms:
        if a.firing:
            out.setdefault(a.cell, []).append(a.rule)
    return out


def _cell_json(w: WavePlan, live: LiveSnapshot, firing_by_cell: dict[str, list[str]],
               phases: dict[tuple[str, str], Phase], now: datetime) -> list[dict[str, Any]]:
    out = []
    for c in w.cells:
        s = live.service(c.cell, w.service)
        firing = list(firing_by_cell.get(c.cell, ()))
        phase = phases.get((w.service, c.cell))
        out.append({
            "phase": phase.to_json(now) if phase else None,
            "cell": c.cell, "version": c.live_version, "target": c.target_version,
            "health": c.health, "action": c.action,
            "drift": [d.to_json() for d in s.drift] if s else [],
            "terraformDrifted": bool(s and s.terraform and s.terraform.drifted),
            "alarms": firing, "message": s.message if s else "",
            "analysis": [{"rule": a.rule, "firing": a.firing, "pending": a.pending,
                          "detail": a.detail} for a in live.alarms
                         if a.detail and a.cell == c.cell],
        })
    return out


def status_json(plan: Plan, live: LiveSnapshot,
                desired: DesiredState | None = None) -> dict[str, Any]:
    """The status view as JSON (``desired``: the time left of each cell's traffic
    phase is known)."""
    services: dict[str, Any] = {}
    firing = _firing(live)
    phases = cell_phases(desired, plan, live)
    for w in plan.waves:
        body = services.setdefault(w.service, {"waves": []})
        name = flags.flag_name(w.service)
        if name is not None:
            body["flag"] = name
        body["waves"].append({
            "wave": w.wave, "state": w.state, "weightPercent": round(w.weight_percent, 2),
            "bakeRemainingSeconds": w.bake_remaining_seconds, "reason": w.reason,
            "cells": _cell_json(w, live, firing, phases, plan.generated_at)})
    for svc, body in services.items():
        if "flag" in body:
            body["promotion"] = flags.summary(svc, [w for w in plan.waves if w.service == svc])
    return {
        "revision": plan.revision, "at": format_time(plan.generated_at),
        "services": services, "holds": [h.to_json() for h in plan.holds],
        "refusals": [r.to_json() for r in plan.refusals],
        "due": [s.id for s in plan.due_steps()],
    }


def _cell_line(svc: str, c: dict[str, Any]) -> str:
    version = flags.shown(svc, c["version"]) or "-"
    if c["target"] and c["target"] != c["version"]:
        version += f" → {flags.shown(svc, c['target'])}"
    notes = [c["phase"]["text"]] if c.get("phase") else []
    if c["drift"]:
        notes.append(f"drift: {', '.join(d['field'] for d in c['drift'])}")
    if c["terraformDrifted"]:
        notes.append("terraform drift")
    if c["alarms"]:
        notes.append(f"ALARM {', '.join(c['alarms'])}")
    for a in c.get("analysis", ()):
        verdict = "FAIL" if a["firing"] else "waiting" if a["pending"] else "pass"
        notes.append(f"ANALYSIS {a['rule']} {verdict}")
    return f"    {c['cell']:<24} {version:<20} {c['health']:<12} {'; '.join(notes)}".rstrip()


def render_status(plan: Plan, live: LiveSnapshot, desired: DesiredState | None = None) -> str:
    """The status view as text."""
    doc = status_json(plan, live, desired)
    out = [f"revision {doc['revision']} at {doc['at']}"]
    for svc, body in sorted(doc["services"].items()):
        out.append(body["promotion"] if "flag" in body else f"service {svc}")
        for w in body["waves"]:
            bake = f" · bake {human(w['bakeRemainingSeconds'])} left" \
                if w["bakeRemainingSeconds"] else ""
            reason = f" · {w['reason']}" if w["reason"] else ""
            out.append(f"  {w['wave']:<12} [{w['state']}] {w['weightPercent']:.1f}%{bake}"
                       f"{reason}")
            out += [_cell_line(svc, c) for c in w["cells"]]
    out += [f"held: {h['service']} {h['version']} in {h['wave']}: {h['reason']}"
            for h in doc["holds"]]
    out += [f"refused: {r['service']} {r['cell']}: {r['reason']}" for r in doc["refusals"]]
    return "\n".join(out) + "\n"
