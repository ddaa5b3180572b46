"""Per-kind builders: one module per desired-state file kind.

Owns: turning one schema-valid document into its frozen model value, with the
per-file semantic errors (bad versions, ranges, durations, escaping paths). Each module
exposes ``build(path, doc) -> Built``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.core.yamldoc import Problem, position


@dataclass(frozen=True)
class Built:
    """The outcome of building one file: a value, or problems (or both for warnings)."""

    kind: str
    name: str
    value: Any
    problems: tuple[Problem, ...] = ()


class Collector:
    """Collects positioned problems while building one document."""

    def __init__(self, path: str, doc: Any) -> None:
        self.path = path
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, keys: list[str | int], message: str) -> None:
        line, col = position(self.doc, keys)
        self.problems.append(Problem(self.path, line, col, message))
