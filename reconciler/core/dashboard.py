"""What the dashboard shows, as JSON: the fleet map, a service's rollout, one cell. Pure.

Owns: the documents the daemon serves under ``/api/`` besides ``/api/status`` (which is
``statusview.status_json`` itself, the very document ``reconciler status -o json``
prints). The fleet map is derived from that same status document — every version,
health, drift and alarm a tile shows is the one ``status`` shows — plus each cell's
place (wave, region, zone, group, weight) from the desired state, in a columnar form
small enough for 10,000 cells (indices into shared tables, no per-cell objects).

Nothing here reads a clock: documents change only when the fleet does (a bake's end is
an instant, the page counts down), so an unchanged fleet gives byte-identical JSON and
the page fetches nothing while idle. No secret is ever in a document: cells' database
credentials (the names of the variables or files holding them) and Secret objects'
contents are never copied; Terraform outputs are the non-sensitive ones the snapshot
keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import IntFlag
from typing import Any

from reconciler.core import flags
from reconciler.core.live import LiveSnapshot, format_time
from reconciler.core.model import AlarmRule, DesiredState
from reconciler.core.phases import cell_phases
from reconciler.core.plan import GateKind, Plan, Step, WavePlan
from reconciler.core.render import RenderError, default_context, render_service
from reconciler.core.versions import Version


#: How a tile's state is packed into one integer per cell and service.
class Flag(IntFlag):
    DRIFT = 1
    TERRAFORM_DRIFT = 2
    ALARM = 4
    HELD = 8  # the cell's live state could not be read in full (a fault), or a held bump
    CHANGING = 16  # an upgrade or install is planned
    ROLLBACK = 32
    REFUSED = 64


_ACTION_FLAGS = {"upgrade": Flag.CHANGING, "install": Flag.CHANGING,
                 "rollback": Flag.ROLLBACK, "held": Flag.HELD, "refused": Flag.REFUSED}

#: An alarm whose value is within this share of its threshold is "near" (warned).
NEAR = 0.8
#: The canary's value this many times the baseline's is flagged (DESIGN.md: the seeds'
#: "error rate 1.5 times the baseline" rule).
DELTA_FLAG = 1.5


class _Table:
    """Values interned to indices, in first-seen order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, value: str | None) -> int:
        if value is None:
            return -1
        i = self.index.get(value)
        if i is None:
            i = self.index[value] = len(self.index)
        return i

    @property
    def values(self) -> list[str]:
        return list(self.index)


def wave_of_groups(desired: DesiredState) -> dict[str, int]:
    """Cell group → index of the wave that names it."""
    return {g: i for i, w in enumerate(desired.fleet.waves) for g in w.groups}


@dataclass(frozen=True)
class Places:
    """Where every cell sits (the part of the fleet map that changes only with the
    desired state: computed once per revision)."""

    at: Mapping[str, int]
    tables: Mapping[str, list[str]]  # waves, regions, zones, groups
    cells: Mapping[str, list[Any]]  # name, wave, region, zone, group, weight


def places(desired: DesiredState) -> Places:
    names = sorted(desired.cells)
    waves, regions, zones, groups = _Table(), _Table(), _Table(), _Table()
    for w in desired.fleet.waves:
        waves(w.name)
    wave_index = wave_of_groups(desired)
    cells = [desired.cells[n] for n in names]
    columns: dict[str, list[Any]] = {
        "name": names,
        "wave": [wave_index.get(c.group, -1) for c in cells],
        "region": [regions(c.region) for c in cells],
        "zone": [zones(c.zone) for c in cells],
        "group": [groups(c.group) for c in cells],
        "weight": [_number(c.weight) for c in cells],
    }
    return Places({n: i for i, n in enumerate(names)},
                  {"waves": waves.values, "regions": regions.values, "zones": zones.values,
                   "groups": groups.values}, columns)


def fleet_view(desired: DesiredState, plan: Plan, status: Mapping[str, Any],
               live: LiveSnapshot, where: Places | None = None) -> dict[str, Any]:
    """The fleet map: every cell's place and, per service, its tile state.

    ``status`` is ``status_json(plan, live)``; the tiles read their values from it.
    Per service, ``version``/``target``/``health``/``flags`` are arrays aligned with
    ``cells.name`` (indices into ``versions``/``healths``; -1: none), ``flags`` a
    ``Flag`` mask. ``where``: ``places(desired)`` when already computed."""
    where = where or places(desired)
    at, n = where.at, len(where.at)
    versions: dict[str | None, int] = {None: -1}
    healths: dict[str, int] = {}
    faults = live.faults
    action_flags = {k: int(v) for k, v in _ACTION_FLAGS.items()}
    drift, tf_drift, alarm, held = (int(Flag.DRIFT), int(Flag.TERRAFORM_DRIFT),
                                    int(Flag.ALARM), int(Flag.HELD))
    services: dict[str, Any] = {}
    for svc, body in sorted(status["services"].items()):
        version, target, health = [-1] * n, [-1] * n, [-1] * n
        marks = [0] * n
        for w in body["waves"]:
            for c in w["cells"]:
                i = at.get(c["cell"])
                if i is None:
                    continue
                v, t, h = (flags.shown(svc, c["version"]), flags.shown(svc, c["target"]),
                           c["health"])
                version[i] = versions.setdefault(v, len(versions) - 1)
                target[i] = versions.setdefault(t, len(versions) - 1)
                health[i] = healths.setdefault(h, len(healths))
                f = action_flags.get(c["action"], 0)
                if c["drift"]:
                    f |= drift
                if c["terraformDrifted"]:
                    f |= tf_drift
                if c["alarms"]:
                    f |= alarm
                if c["cell"] in faults:
                    f |= held
                marks[i] = f
        services[svc] = {"version": version, "target": target, "health": health,
                         "flags": marks}
    return {
        "revision": plan.revision, **where.tables,
        "versions": [v for v in versions if v is not None], "healths": list(healths),
        "flags": {f.name.lower(): int(f) for f in Flag if f.name},
        "cells": where.cells, "services": services,
        "faults": dict(sorted(faults.items())),
    }


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 4)


# -- a service's rollout --------------------------------------------------------------

def _service_waves(plan: Plan, service: str) -> list[WavePlan]:
    return sorted((w for w in plan.waves if w.service == service), key=lambda w: w.index)


def _stage(waves: Sequence[WavePlan]) -> dict[str, Any]:
    """``stage n/N``: the first wave not done (N when all are)."""
    total = len(waves)
    current = next((i + 1 for i, w in enumerate(waves) if w.state != "done"), total)
    rolling_back = any(w.state == "rolling-back" for w in waves)
    label = "rolling back" if rolling_back else (
        "done" if all(w.state == "done" for w in waves) else f"{current}/{total}")
    return {"current": current, "total": total, "label": label,
            "rollingBack": rolling_back}


_LEFT = re.compile(r" ?\(?\b(?:\d+[hms])+(?: of bake)? left\)?")


def steady(reason: str) -> str:
    """A gate's reason without the time left in it (the page counts down from the bake's
    end), so the document does not change from one tick to the next."""
    return _LEFT.sub("", reason).strip().rstrip(",") or (
        "bake time" if "bake" in reason else "waiting")


def _gates(steps: Iterable[Step], limit: int = 8) -> tuple[
        list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """What stands in front of the service's next steps, grouped by wave and gate: the
    first ``limit`` groups overall, and per wave (one pass over the steps)."""
    groups: dict[tuple[str, GateKind], dict[str, Any]] = {}
    for s in steps:
        kind = s.gate.kind
        if kind is GateKind.NONE:
            continue
        g = groups.get((s.wave or "", kind))
        if g is None:
            g = groups[(s.wave or "", kind)] = {"wave": s.wave, "kind": str(kind),
                                                "reason": steady(s.gate.reason), "steps": 0}
        g["steps"] += 1
    per_wave: dict[str, list[dict[str, Any]]] = {}
    for (wave, _), g in groups.items():
        rows = per_wave.setdefault(wave, [])
        if len(rows) < limit:
            rows.append(g)
    return list(groups.values())[:limit], per_wave


def _split(waves: Sequence[WavePlan], weights: Mapping[str, float]) -> list[dict[str, Any]]:
    """The live version split by fleet weight (cells with nothing running: ``null``)."""
    by: dict[str | None, list[float]] = {}
    for w in waves:
        for c in w.cells:
            acc = by.setdefault(c.live_version, [0.0, 0])
            acc[0] += weights.get(c.cell, 0.0)
            acc[1] += 1
    total = sum(a[0] for a in by.values()) or 1.0
    service = waves[0].service if waves else ""
    rows = [{"version": flags.shown(service, v), "weightPercent": round(100 * a[0] / total, 2),
             "cells": int(a[1])} for v, a in by.items()]
    return sorted(rows, key=lambda r: (-r["weightPercent"], str(r["version"])))


def _migrations(desired: DesiredState, live: LiveSnapshot, service: str) -> list[
        dict[str, Any]]:
    """Each migration of the service: on how many of its databases it is expanded and
    contracted (in flight: expanded somewhere, not contracted everywhere)."""
    svc = desired.services.get(service)
    out = []
    for m in desired.migrations:
        if m.service != service or svc is None:
            continue
        dbs = [(c.name, d.name) for c in desired.cells.values() for d in c.databases
               if d.name == m.database]
        phases = [live.migration_phase(cell, db, m.id) for cell, db in dbs]
        expanded = sum(1 for p in phases if p in ("expanded", "contracted"))
        contracted = sum(1 for p in phases if p == "contracted")
        state = ("contracted" if dbs and contracted == len(dbs) else
                 "in-flight" if expanded else "pending")
        out.append({"id": m.id, "database": m.database, "state": state,
                    "databases": len(dbs), "expanded": expanded, "contracted": contracted,
                    "requiredBy": str(m.required_by), "oldShapeUsedBy": str(m.old_shape_used_by)})
    return out


def steps_by_service(plan: Plan) -> dict[str, list[Step]]:
    """The plan's steps per service (one pass, for every service's rollout)."""
    out: dict[str, list[Step]] = {}
    for s in plan.steps:
        out.setdefault(s.service, []).append(s)
    return out


def rollout_view(desired: DesiredState, plan: Plan, live: LiveSnapshot,
                 service: str, steps: Sequence[Step] | None = None) -> dict[str, Any]:
    """A service's rollout: its waves in order with their state, the stage, the version
    split by weight, the gates in front of the next steps, its migrations. ``steps``:
    the service's steps when already split (``steps_by_service``)."""
    waves = _service_waves(plan, service)
    fleet_waves = {w.name: w for w in desired.fleet.waves}
    weights = {n: c.weight for n, c in desired.cells.items()}
    progress = live.rollout.get(service, {})
    if steps is None:
        steps = [s for s in plan.steps if s.service == service]
    gates, wave_gates = _gates(steps)
    phases = cell_phases(desired, plan, live)
    rows = []
    for w in waves:
        at: dict[str, int] = {}
        for c in w.cells:
            key = flags.shown(service, c.live_version) or "none"
            at[key] = at.get(key, 0) + 1
        p = progress.get(w.wave)
        spec = fleet_waves.get(w.wave)
        bake = spec.bake_seconds if spec else 0
        ends = None
        running = {c.live_version for c in w.cells}
        if w.state == "baking" and p is not None and p.bake_started_at is not None and \
                running == {str(p.version)}:  # a bake recorded for this very version
            ends = format_time(p.bake_started_at + timedelta(seconds=bake))
        targets = sorted({c.target_version for c in w.cells if c.target_version},
                         key=Version.parse)
        rows.append({
            "wave": w.wave, "index": w.index, "state": w.state,
            "weightPercent": round(w.weight_percent, 2), "cells": len(w.cells),
            "cellsAt": dict(sorted(at.items())),
            "targetVersion": flags.shown(service, targets[-1]) if targets else None,
            "bakeSeconds": bake,
            "bakeStartedAt": format_time(p.bake_started_at) if p else None,
            "bakeEndsAt": ends, "reason": steady(w.reason) if w.reason else "",
            "failedVersion": flags.shown(service, p.failed_version) if p and p.failed_version
            else None,
            "failureReason": p.failure_reason if p and p.failed_version else "",
            "gates": wave_gates.get(w.wave, []),
            # cells in a canary or shadow phase: "canary 50% in c1" and when it ends
            "phases": [{"cell": c.cell, "phase": ph.steady, "endsAt": format_time(ph.ends_at)
                        if ph.ends_at else None, "next": ph.next_step}
                       for c in w.cells if (ph := phases.get((service, c.cell)))],
        })
    return {
        "service": service, "revision": plan.revision,
        "stage": _stage(waves), "split": _split(waves, weights), "waves": rows,
        "gates": gates,
        "holds": [h.to_json() for h in plan.holds if h.service == service],
        "refusals": [r.to_json() for r in plan.refusals if r.service == service],
        "migrations": _migrations(desired, live, service),
        # a flag: its promotion as people read it (flag checkout-v2: off → on, wave 2/4)
        "promotion": flags.summary(service, waves) if flags.flag_name(service) else None,
    }


# -- one cell ------------------------------------------------------------------------

_MISSING = re.compile(r"unknown template name 'terraform\.([A-Za-z0-9_]+)'")


def _objects(desired: DesiredState, cell: str, service: str, version: str | None,
             outputs: Mapping[str, Any]) -> list[dict[str, str]] | str:
    """Kind, name and namespace of what the service's templates render for the cell
    (never their bodies); the reason when they do not render."""
    if version is None or service not in desired.services:
        return []
    values = dict(outputs)
    for _ in range(2):  # outputs not read yet stand in as "?" (only kinds and names shown)
        try:
            objs = render_service(desired, default_context(desired.cells[cell], service,
                                                           version, values))
            break
        except RenderError as e:
            missing = set(_MISSING.findall(str(e)))
            if not missing or missing <= set(values):
                return f"not rendered: {e}"
            values.update(dict.fromkeys(missing, "?"))
    else:
        return "not rendered"
    ns = desired.cells[cell].kubernetes.namespace
    return [{"kind": str(o.get("kind", "")), "name": str((o.get("metadata") or {}).get("name",
                                                                                      "")),
             "namespace": str((o.get("metadata") or {}).get("namespace") or ns)}
            for o in objs]


def cell_view(desired: DesiredState, plan: Plan, live: LiveSnapshot, cell: str,
              recent: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """One cell: its place, per service the live state with its objects, drift and
    Terraform outputs, the alarms evaluated for it, its migration ledger, and the
    ``recent`` step outcomes the daemon kept (newest last). None: no such cell."""
    c = desired.cells.get(cell)
    if c is None:
        return None
    services: dict[str, Any] = {}
    phases = cell_phases(desired, plan, live)
    for w in plan.waves:
        for cp in w.cells:
            if cp.cell != cell:
                continue
            s = live.service(cell, w.service)
            phase = phases.get((w.service, cell))
            tf = s.terraform if s else None
            outputs = dict(sorted(tf.outputs.items())) if tf else {}
            services[w.service] = {
                "wave": w.wave, "waveState": w.state,
                "version": flags.shown(w.service, cp.live_version),
                "target": flags.shown(w.service, cp.target_version), "health": cp.health,
                "action": cp.action,
                "previousVersion": flags.shown(w.service, s.previous_version) if s else None,
                "message": s.message if s else "",
                "appliedHash": s.applied_hash if s else None,
                "drift": [d.to_json() for d in s.drift] if s else [],
                "objects": _objects(desired, cell, w.service, cp.live_version or
                                    cp.target_version, outputs),
                "terraform": None if tf is None else {
                    "appliedHash": tf.applied_hash, "drifted": tf.drifted,
                    "outputs": outputs},
                "steps": [s2.to_json() for s2 in plan.steps
                          if s2.cell == cell and s2.service == w.service],
                "phase": phase.to_json(plan.generated_at) if phase else None,
            }
    ledger = {db: {mid: {"phase": m.phase, "at": format_time(m.at), "checksum": m.checksum}
                   for mid, m in sorted(migs.items())}
              for db, migs in sorted(live.databases.get(cell, {}).items())}
    alarms = [{"rule": a.rule, "firing": a.firing, "value": a.value,
               "threshold": a.threshold, "samples": a.samples}
              for a in sorted(live.alarms, key=lambda a: a.rule) if a.cell == cell]
    return {
        "cell": cell, "revision": plan.revision,
        "group": c.group, "region": c.region, "zone": c.zone, "weight": _number(c.weight),
        "wave": next((w.name for w in desired.fleet.waves if c.group in w.groups), None),
        "namespace": c.kubernetes.namespace, "context": c.kubernetes.context,
        "databases": [{"name": d.name, "dbname": d.dbname, "host": d.host, "port": d.port}
                      for d in c.databases],
        "fault": live.faults.get(cell), "services": services, "ledger": ledger,
        "alarms": alarms, "recent": list(recent),
    }


# -- canary against baseline ---------------------------------------------------------

@dataclass(frozen=True)
class Cohorts:
    """A service's cells on the version being rolled out (the canary) and on the
    version it replaces (the baseline). ``canary_version`` None: no rollout in flight."""

    service: str
    canary_version: str | None
    baseline_version: str | None
    canary: tuple[str, ...]
    baseline: tuple[str, ...]


def cohorts(plan: Plan, service: str) -> Cohorts:
    """The cohorts of ``service``: the canary is the newest target version some cell
    already runs while others do not yet (or, rolling back, the version left); the
    baseline is the version most of the other cells run."""
    waves = _service_waves(plan, service)
    cells = [c for w in waves for c in w.cells]
    running: dict[str, list[str]] = {}
    for c in cells:
        if c.live_version:
            running.setdefault(c.live_version, []).append(c.cell)
    targets = {c.target_version for c in cells if c.target_version}
    failed = {w.reason for w in waves if w.state == "rolling-back"}
    new = [v for v in running if v in targets and len(running) > 1]
    if failed:  # rolling back: the canary is the version being left
        new = [v for v in running if v not in targets] or new
    if not new:
        return Cohorts(service, None, None, (), ())
    canary = max(new, key=Version.parse)
    rest = {v: cs for v, cs in running.items() if v != canary}
    if not rest:
        return Cohorts(service, canary, None, tuple(sorted(running[canary])), ())
    base = max(rest, key=lambda v: (len(rest[v]), Version.parse(v)))
    return Cohorts(service, canary, base, tuple(sorted(running[canary])),
                   tuple(sorted(rest[base])))


def alarm_level(rule_comparison: str, value: float | None, threshold: float | None,
                firing: bool) -> str:
    """``crossed`` (firing, or past the threshold), ``near`` (within ``NEAR`` of it) or
    ``ok``; ``unknown`` without a value."""
    if firing:
        return "crossed"
    if value is None or threshold is None:
        return "unknown"
    if rule_comparison in (">", ">="):
        if value > threshold or (rule_comparison == ">=" and value == threshold):
            return "crossed"
        return "near" if threshold > 0 and value >= NEAR * threshold else "ok"
    if value < threshold or (rule_comparison == "<=" and value == threshold):
        return "crossed"
    return "near" if value <= threshold / NEAR else "ok"


_LEVELS = ("unknown", "ok", "near", "crossed")


def _rules(desired: DesiredState, service: str) -> list[AlarmRule]:
    svc = desired.services.get(service)
    return [*desired.fleet.alarms, *(svc.alarms if svc else ())]


def cohort_alarms(desired: DesiredState, live: LiveSnapshot, c: Cohorts) -> list[
        dict[str, Any]]:
    """Per alarm rule, the worst value and level among the canary's and the baseline's
    cells (the alarms the daemon evaluated this tick)."""
    out = []
    for rule in _rules(desired, c.service):
        row: dict[str, Any] = {"rule": rule.name, "threshold": rule.threshold,
                               "comparison": rule.comparison}
        for name, members in (("canary", set(c.canary)), ("baseline", set(c.baseline))):
            states = [a for a in live.alarms if a.rule == rule.name and a.cell in members]
            worst, level = None, "unknown"
            for a in states:
                lv = alarm_level(rule.comparison, a.value, a.threshold, a.firing)
                if _LEVELS.index(lv) > _LEVELS.index(level) or worst is None:
                    worst, level = a.value, lv
            row[name] = {"value": worst, "level": level, "cells": len(states)}
        out.append(row)
    return out


Series = Sequence[tuple[float, float]]


def _last(series: Series) -> float | None:
    return series[-1][1] if series else None


def canary_view(c: Cohorts, metrics: Mapping[str, Mapping[str, Series]],
                alarms: Sequence[Mapping[str, Any]], window_seconds: int,
                sampled: Mapping[str, int] | None = None,
                error: str = "") -> dict[str, Any]:
    """Canary against baseline: per metric (``requests``, ``errors``, ``latency``) both
    cohorts' series over the window, their last values, the delta (canary / baseline)
    and whether it is flagged (≥ ``DELTA_FLAG`` times the baseline); the alarms'
    levels; ``error`` when the metrics could not be read."""
    rows = {}
    for metric, by in metrics.items():
        canary, baseline = by.get("canary", ()), by.get("baseline", ())
        a, b = _last(canary), _last(baseline)
        ratio = (a / b) if a is not None and b not in (None, 0.0) else None
        flagged = bool(ratio is not None and ratio >= DELTA_FLAG and metric != "requests")
        if metric != "requests" and a is not None and b == 0.0 and a > 0:
            flagged = True
        rows[metric] = {
            "canary": [[round(t, 3), _round(v)] for t, v in canary],
            "baseline": [[round(t, 3), _round(v)] for t, v in baseline],
            "last": {"canary": _round(a), "baseline": _round(b)},
            "ratio": _round(ratio), "flagged": flagged,
        }
    warn = any(r["flagged"] for r in rows.values()) or any(
        side["level"] in ("near", "crossed") for a in alarms
        for side in (a["canary"], a["baseline"]))
    return {"service": c.service, "canaryVersion": c.canary_version,
            "baselineVersion": c.baseline_version, "canaryCells": len(c.canary),
            "baselineCells": len(c.baseline), "sampled": dict(sampled or {}),
            "windowSeconds": window_seconds, "metrics": rows, "alarms": list(alarms),
            "warning": warn, "error": error}


def _round(v: float | None) -> float | None:
    if v is None:
        return None
    return float(f"{v:.6g}")
