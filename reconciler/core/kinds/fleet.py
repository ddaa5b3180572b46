"""Fleet (reconciler.yaml): waves, rollout policy, alarms, self-heal, status target."""

from __future__ import annotations

from typing import Any

from reconciler.core.durations import seconds
from reconciler.core.kinds import Built, Collector
from reconciler.core.kinds.alarmrule import alarms
from reconciler.core.model import (
    Fleet,
    MaxUnavailable,
    RollbackPolicy,
    SourceRef,
    StatusConfig,
    TimeWindow,
    Wave,
)
from reconciler.core.statusdocs import DEFAULT_STATUS_DIR, status_path_problem
from reconciler.core.yamldoc import position

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _max_unavailable(value: Any) -> MaxUnavailable:
    if isinstance(value, str) and value.endswith("%"):
        return MaxUnavailable(percent=int(value[:-1]))
    return MaxUnavailable(count=int(value)) if value is not None else MaxUnavailable(count=1)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _window(raw: dict[str, Any]) -> TimeWindow:
    days = tuple(DAYS.index(d) for d in raw.get("days", DAYS))
    return TimeWindow(days, _minutes(raw["start"]), _minutes(raw["end"]))


def _waves(c: Collector, spec: dict[str, Any]) -> tuple[Wave, ...]:
    waves = []
    for i, raw in enumerate(spec["waves"]):
        line, col = position(c.doc, ["spec", "waves", i])
        waves.append(Wave(
            name=str(raw["name"]), groups=tuple(str(g) for g in raw["groups"]),
            bake_seconds=seconds(raw.get("bake"), 0),
            max_unavailable=_max_unavailable(raw.get("maxUnavailable")),
            source=SourceRef(c.path, line, col)))
    return tuple(waves)


def _check_windows(c: Collector, windows: tuple[TimeWindow, ...]) -> None:
    for i, w in enumerate(windows):
        if w.end_minute <= w.start_minute:
            c.add(["spec", "rollout", "timeWindows", i], "time window ends before it starts")


def _status(c: Collector, spec: dict[str, Any]) -> StatusConfig:
    """``spec.status``: the directory (checked: the repository is untrusted and the daemon
    writes there) and the author; an author field left out is "" (the daemon then uses
    the operator's)."""
    status = spec.get("status", {})
    directory = str(status.get("path", DEFAULT_STATUS_DIR))
    problem = status_path_problem(directory)
    if problem:
        c.add(["spec", "status", "path"], problem)
    author = status.get("author", {})
    return StatusConfig(directory, str(author.get("name", "")), str(author.get("email", "")))


def build(path: str, doc: Any) -> Built:
    """Build the Fleet from a schema-valid reconciler.yaml."""
    c = Collector(path, doc)
    spec, rollout = doc["spec"], doc["spec"].get("rollout", {})
    windows = tuple(_window(w) for w in rollout.get("timeWindows", []))
    _check_windows(c, windows)
    fleet = Fleet(
        name=str(doc["metadata"]["name"]), waves=_waves(c, spec),
        rollback_policy=RollbackPolicy(rollout.get("rollback", RollbackPolicy.WAVE)),
        parallel_rollback=bool(rollout.get("parallelRollback", True)),
        self_heal=bool(spec.get("selfHeal", True)),
        canary_max_weight_percent=float(rollout.get("canaryMaxWeightPercent", 10)),
        alarms=alarms(c, ["spec", "alarms"], spec.get("alarms", [])),
        time_windows=windows,
        status=_status(c, spec),
        source=SourceRef(path, 1, 1))
    return Built("Fleet", fleet.name, fleet, tuple(c.problems))
