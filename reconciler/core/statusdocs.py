"""The status documents the daemon commits under the status directory. Pure.

Owns: what ``<dir>/cells/<cell>.yaml``, ``<dir>/rollouts/<service>.yaml`` and
``<dir>/desired.yaml`` say, computed from a plan, the live snapshot it was made from,
the rollout progress and the desired state's errors. Nothing here changes from one tick to
the next unless the fleet changed (no timestamps of the tick itself, no bake countdown),
so an unchanged fleet writes no commit. Also where status goes and as whom
(``StatusTarget``): the directory is the live Fleet's ``spec.status.path`` (``status``
by default), which the repository controls, so ``status_path_problem`` says why a path
may not be one (absolute, escaping, or overlapping the desired state itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.live import LiveSnapshot, WaveProgress, format_time
from reconciler.core.model import StatusConfig
from reconciler.core.plan import Plan, WavePlan

DEFAULT_STATUS_DIR = "status"
DEFAULT_AUTHOR = ("reconciler", "reconciler@localhost")
#: Top-level names the desired state is read from (or Git keeps): the status directory
#: may be none of them nor inside one (compared case-insensitively).
RESERVED = ("reconciler.yaml", "reconciler.yml", "cells", "services", "releases",
            "migrations", "schemas", ".git")
_BAD_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


def status_path_problem(path: str) -> str:
    """Why ``path`` cannot be the status directory; "" when it can.

    A relative POSIX path of non-empty segments, without ``.``/``..`` segments, that is
    not one of (or under one of) the ``RESERVED`` top-level names and names no ``.git``.
    """
    if not path:
        return "status path must not be empty"
    if _BAD_CHARS.search(path):
        return f"status path {path!r} must be a POSIX path (no '\\' or control characters)"
    if path.startswith("/"):
        return f"status path {path!r} must be relative to the repository root (no leading '/')"
    segments = path.split("/")
    if "" in segments:
        return f"status path {path!r} has an empty segment ('//' or a trailing '/')"
    if any(s in (".", "..") for s in segments):
        return f"status path {path!r} must not contain '.' or '..' segments"
    if any(s.lower() == ".git" for s in segments):
        return f"status path {path!r} must not name '.git'"
    first = segments[0].lower()
    if first in RESERVED:
        what = first if "." in first else f"{first}/"
        return (f"status path {path!r} overlaps {what}: the daemon writes status there, so "
                f"it must not be (or be inside) a part of the desired state")
    return ""


@dataclass(frozen=True)
class StatusTarget:
    """Where one tick's status goes and who authors it.

    ``author`` signs status commits (the Fleet's ``status.author``, else the operator's);
    ``operator`` is the operator's configured author, whose commits are ours too.
    """

    directory: str = DEFAULT_STATUS_DIR
    author: tuple[str, str] = DEFAULT_AUTHOR
    operator: tuple[str, str] = DEFAULT_AUTHOR

    @property
    def prefix(self) -> str:
        return f"{self.directory}/"

    @property
    def emails(self) -> frozenset[str]:
        """The author emails of the daemon's own status commits."""
        return frozenset((self.author[1], self.operator[1]))

    def holds(self, path: str) -> bool:
        """``path`` lies inside the status directory."""
        return path.startswith(self.prefix)


def status_directory(status: StatusConfig | None) -> str:
    """The live Fleet's status directory (``status`` before any good state; the loader
    never lets an invalid path through, and one is never used)."""
    if status is None or status_path_problem(status.path):
        return DEFAULT_STATUS_DIR
    return status.path


def status_target(status: StatusConfig | None, operator: tuple[str, str]) -> StatusTarget:
    """The target for the live Fleet's ``status`` (None before any good state): its
    directory and author, each author field falling back to the operator's."""
    if status is None:
        return StatusTarget(DEFAULT_STATUS_DIR, operator, operator)
    author = (status.author_name or operator[0], status.author_email or operator[1])
    return StatusTarget(status_directory(status), author, operator)


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
    analysis = _analysis(live, cell)
    if analysis:
        entry["analysis"] = analysis
    return entry


def _analysis(live: LiveSnapshot, cell: str) -> list[str]:
    """The cell's baseline analyses that are firing (with their numbers) or waiting;
    a passing one's numbers change every tick and would make a status commit each."""
    out = []
    for a in sorted(live.alarms, key=lambda a: a.rule):
        if a.cell != cell or not a.detail:
            continue
        if a.firing:
            out.append(f"{a.rule}: {a.detail}")
        elif a.pending:
            out.append(f"{a.rule}: waiting for samples")
    return out


def cell_documents(plan: Plan, live: LiveSnapshot,
                   directory: str = DEFAULT_STATUS_DIR) -> dict[str, dict[str, Any]]:
    """``<directory>/cells/<cell>.yaml`` for every cell in the plan."""
    cells: dict[str, dict[str, Any]] = {}
    for w in plan.waves:
        for c in w.cells:
            doc = cells.setdefault(c.cell, {"cell": c.cell, "services": {}})
            doc["services"][w.service] = _cell_entry(live, c.cell, w, c.health,
                                                     c.live_version, c.target_version)
            if c.cell in live.faults:
                doc["held"] = live.faults[c.cell]
    return {f"{directory}/cells/{name}.yaml": doc for name, doc in sorted(cells.items())}


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
                      desired_revision: str | None,
                      directory: str = DEFAULT_STATUS_DIR) -> dict[str, dict[str, Any]]:
    """``<directory>/rollouts/<service>.yaml`` for every service in the plan."""
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
    return {f"{directory}/rollouts/{s}.yaml": d for s, d in sorted(docs.items())}


def desired_document(revision: str | None, last_good: str | None,
                     errors: Sequence[str],
                     directory: str = DEFAULT_STATUS_DIR) -> dict[str, dict[str, Any]]:
    """``<directory>/desired.yaml``: which revision is live and why a newer one is not."""
    doc: dict[str, Any] = {"revision": revision, "lastGoodRevision": last_good,
                           "valid": not errors}
    if errors:
        doc["errors"] = list(errors)
    return {f"{directory}/desired.yaml": doc}


def owned_documents(docs: Mapping[str, dict[str, Any]], directory: str,
                    owns: Callable[[str | None], bool]) -> dict[str, dict[str, Any]]:
    """Sharded replicas: the cell documents of the cells ``owns`` accepts, and the
    fleet's documents (rollouts, desired) when it accepts None (the wave-level owner), so
    no two replicas write the same file."""
    cells = f"{directory}/cells/"
    out: dict[str, dict[str, Any]] = {}
    for path, doc in docs.items():
        cell = path[len(cells):-len(".yaml")] if path.startswith(cells) else None
        if owns(cell):
            out[path] = doc
    return out


def status_documents(plan: Plan | None, live: LiveSnapshot | None,
                     progress: Mapping[str, Mapping[str, WaveProgress]],
                     revision: str | None, last_good: str | None,
                     errors: Sequence[str],
                     directory: str = DEFAULT_STATUS_DIR) -> dict[str, dict[str, Any]]:
    """Every status document for one tick (cells and rollouts only when planned), under
    ``directory`` (the live Fleet's ``status.path``)."""
    problem = status_path_problem(directory)
    if problem:
        raise ValueError(problem)
    docs = desired_document(revision, last_good, errors, directory)
    if plan is not None and live is not None:
        docs |= cell_documents(plan, live, directory)
        docs |= rollout_documents(plan, progress, last_good, directory)
    return docs
