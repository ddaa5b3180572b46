"""The fleet's history as the dashboard shows it, read from Git commits. Pure.

Owns: telling, from the commits of the followed branch (newest first) and the release
and status files they changed, what happened — a person's version bump (``bump``), a
wave that finished baking a version (``promoted``, from the daemon's status commits), an
automatic rollback (``rollback``: the daemon's revert commit, with the alarm, its value
and threshold parsed from the reason), a person's revert (``revert``) and a revision
the daemon refused (``rejected``, from ``status/desired.yaml``). Each event names its
commit. The adapter reads the commits; which files it must read is ``wanted``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import yaml

from reconciler.core.live import format_time

ROLLBACK_TRAILER = "Reconciler-Rollback-Of"
STATUS_TRAILER = "Reconciler-Status"
#: Release and status files larger than this are not read for history.
MAX_FILE = 256 << 10


class EventKind(StrEnum):
    BUMP = "bump"
    PROMOTED = "promoted"
    ROLLBACK = "rollback"
    REVERT = "revert"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CommitRecord:
    """One commit as the adapter read it: ``files`` holds, for each changed path that
    ``wanted`` accepted, its text before and after (None: absent)."""

    sha: str
    author: str
    email: str
    at: datetime
    message: str
    paths: tuple[str, ...]
    files: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


def wanted(status_dir: str, path: str) -> bool:
    """Whether history needs the text of a changed ``path``: release files, the status
    rollouts and ``desired.yaml``."""
    return path.startswith("releases/") or path.startswith(f"{status_dir}/rollouts/") or \
        path == f"{status_dir}/desired.yaml"


def trailers(message: str) -> dict[str, str]:
    """The trailers of the message's last paragraph (``Key: value`` lines)."""
    last = message.strip().split("\n\n")[-1]
    out = {}
    for line in last.splitlines():
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z0-9-]+", key.strip()):
            out[key.strip()] = value.strip()
    return out


def _load(text: str | None) -> Any:
    if text is None or len(text) > MAX_FILE:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _release_versions(text: str | None) -> dict[str, str]:
    doc = _load(text)
    try:
        return {str(g): str(e["version"]) for e in doc["spec"]["versions"]
                for g in e["groups"]}
    except (TypeError, KeyError):
        return {}


def _release_service(path: str, texts: tuple[str | None, str | None]) -> str:
    for text in reversed(texts):
        doc = _load(text)
        if isinstance(doc, dict) and isinstance(doc.get("spec"), dict) and \
                doc["spec"].get("service"):
            return str(doc["spec"]["service"])
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _changes(files: Mapping[str, tuple[str | None, str | None]]) -> list[dict[str, Any]]:
    """Per release file changed: the service and, per version moved to, its groups."""
    out = []
    for path, (before, after) in sorted(files.items()):
        if not path.startswith("releases/"):
            continue
        old, new = _release_versions(before), _release_versions(after)
        moved: dict[tuple[str | None, str], list[str]] = {}
        for g, v in new.items():
            if old.get(g) != v:
                moved.setdefault((old.get(g), v), []).append(g)
        for (frm, to), groups in sorted(moved.items(), key=lambda kv: (kv[0][1], kv[1])):
            out.append({"service": _release_service(path, (before, after)),
                        "from": frm, "to": to, "groups": sorted(groups)})
    return out


_ALARM = re.compile(r"alarm '(?P<rule>[^']+)' fired on (?P<cell>\S+?)"
                    r"(?: = (?P<value>[-+0-9.eE]+|nan|inf) > (?P<threshold>[-+0-9.eE]+))?"
                    r" after (?P<version>\S+)")
_DEGRADED = re.compile(r"(?P<cell>\S+) is Degraded on (?P<version>\S+?): (?P<message>.*)")
_ROLL_BACK = re.compile(r"Roll back (?P<service>\S+) (?P<version>\S+) in (?P<groups>.+)")
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,64})")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def rollback_reason(reason: str) -> dict[str, Any]:
    """The alarm (rule, cell, value, threshold) or failed health in a rollback's reason."""
    m = _ALARM.search(reason)
    if m:
        return {"cause": "alarm", "alarm": m["rule"], "cell": m["cell"],
                "value": _float(m["value"]), "threshold": _float(m["threshold"])}
    m = _DEGRADED.search(reason)
    if m:
        return {"cause": "health", "cell": m["cell"], "message": m["message"]}
    return {"cause": "other"}


def _base(kind: EventKind, c: CommitRecord) -> dict[str, Any]:
    return {"kind": str(kind), "commit": c.sha, "at": format_time(c.at),
            "author": c.author, "subject": c.message.split("\n", 1)[0][:200]}


def _status_events(c: CommitRecord, status_dir: str) -> list[dict[str, Any]]:
    out = []
    for path, (before, after) in sorted(c.files.items()):
        if path.startswith(f"{status_dir}/rollouts/"):
            old, new = _load(before) or {}, _load(after) or {}
            if not isinstance(new, dict) or not isinstance(old, dict):
                continue
            service = str(new.get("service") or path.rsplit("/", 1)[-1].split(".")[0])
            was = old.get("waves") or {}
            for wave, w in (new.get("waves") or {}).items():
                if not isinstance(w, dict) or w.get("state") != "done":
                    continue
                prev = was.get(wave) if isinstance(was, dict) else None
                if isinstance(prev, dict) and prev.get("state") == "done" and \
                        prev.get("version") == w.get("version"):
                    continue
                out.append({**_base(EventKind.PROMOTED, c), "service": service,
                            "wave": str(wave), "version": str(w.get("version"))})
        elif path == f"{status_dir}/desired.yaml":
            old, new = _load(before) or {}, _load(after) or {}
            if not isinstance(new, dict) or new.get("valid", True):
                continue
            if isinstance(old, dict) and not old.get("valid", True) and \
                    old.get("revision") == new.get("revision"):
                continue
            errors = [str(e) for e in (new.get("errors") or [])][:5]
            out.append({**_base(EventKind.REJECTED, c), "revision": new.get("revision"),
                        "lastGoodRevision": new.get("lastGoodRevision"), "errors": errors})
    return out


def commit_events(c: CommitRecord, status_dir: str) -> list[dict[str, Any]]:
    """What one commit means (none for a change that is neither)."""
    tr = trailers(c.message)
    if ROLLBACK_TRAILER in tr:
        m = _ROLL_BACK.match(c.message.split("\n", 1)[0])
        paragraphs = c.message.strip().split("\n\n")
        reason = paragraphs[1].strip() if len(paragraphs) > 2 else ""
        return [{**_base(EventKind.ROLLBACK, c), "revertOf": tr[ROLLBACK_TRAILER],
                 "service": m["service"] if m else None,
                 "version": m["version"] if m else None,
                 "groups": [g.strip() for g in m["groups"].split(",")] if m else [],
                 "reason": reason, **rollback_reason(reason)}]
    if tr.get(STATUS_TRAILER) == "true" and all(
            p.startswith(f"{status_dir}/") for p in c.paths):
        return _status_events(c, status_dir)
    changes = _changes(c.files)
    m = _REVERTS.search(c.message)
    if m or c.message.startswith("Revert "):
        return [{**_base(EventKind.REVERT, c), "revertOf": m[1] if m else None,
                 "changes": changes}]
    if changes:
        return [{**_base(EventKind.BUMP, c), "changes": changes}]
    return []


def history_events(commits: Iterable[CommitRecord], status_dir: str,
                   limit: int = 100) -> list[dict[str, Any]]:
    """The events of ``commits`` (newest first), at most ``limit``."""
    out: list[dict[str, Any]] = []
    for c in commits:
        out.extend(commit_events(c, status_dir))
        if len(out) >= limit:
            break
    return out[:limit]


def rejected_event(revision: str | None, errors: Sequence[str],
                   at: datetime) -> dict[str, Any]:
    """A revision refused by a tick, for a source without Git history (a directory)."""
    return {"kind": str(EventKind.REJECTED), "commit": None, "at": format_time(at),
            "author": "", "subject": f"revision {str(revision)[:12]} refused",
            "revision": revision, "lastGoodRevision": None, "errors": list(errors)[:5]}
