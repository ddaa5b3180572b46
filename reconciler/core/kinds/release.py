"""Release (releases/<svc>.yaml): the version each cell group runs."""

from __future__ import annotations

from typing import Any

from reconciler.core.kinds import Built, Collector
from reconciler.core.model import Release, ReleaseEntry, SourceRef
from reconciler.core.versions import Version
from reconciler.core.yamldoc import position


def _entry(c: Collector, i: int, raw: dict[str, Any], seen: dict[str, int]) -> ReleaseEntry:
    keys: list[str | int] = ["spec", "versions", i]
    for j, g in enumerate(raw["groups"]):
        if g in seen:
            c.add([*keys, "groups", j],
                  f"group {g!r} already has a version in entry {seen[g] + 1}")
        seen.setdefault(g, i)
    try:
        version = Version.parse(str(raw["version"]))
    except ValueError as e:
        c.add([*keys, "version"], str(e))
        version = Version(0, 0, 0, text="0.0.0")
    line, col = position(c.doc, keys)
    return ReleaseEntry(tuple(str(g) for g in raw["groups"]), version,
                        SourceRef(c.path, line, col))


def build(path: str, doc: Any) -> Built:
    """Build a Release from a schema-valid document."""
    c = Collector(path, doc)
    seen: dict[str, int] = {}
    entries = tuple(_entry(c, i, raw, seen) for i, raw in enumerate(doc["spec"]["versions"]))
    rel = Release(str(doc["spec"]["service"]), entries, SourceRef(path, 1, 1))
    return Built("Release", str(doc["metadata"]["name"]), rel, tuple(c.problems))
