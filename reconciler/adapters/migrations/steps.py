"""The identity of a migration step: its texts from the repository and their checksum.

Owns: which repository texts make up a step (SQL files in order, or the Job template) and
the checksum recorded in the ledger. Renaming a file does not change the checksum; any
change to its content does. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from reconciler.adapters.errors import PermanentError
from reconciler.core.model import DesiredState, Migration, MigrationStep

ACTIONS = {"expand": "expanded", "contract": "contracted", "rollback": "rolled-back"}


@dataclass(frozen=True)
class StepTexts:
    """A step resolved against the repository: (path, text) pairs and its checksum."""

    action: str  # expand | contract | rollback
    kind: str  # sql | job | none
    files: tuple[tuple[str, str], ...]
    checksum: str
    timeout_seconds: int

    @property
    def phase(self) -> str:
        """The ledger phase this step records."""
        return ACTIONS[self.action]


def step_of(migration: Migration, action: str) -> MigrationStep | None:
    """The migration's step for ``action``."""
    if action not in ACTIONS:
        raise PermanentError(f"unknown migration action {action!r}")
    step: MigrationStep | None = getattr(migration, action)
    return step


def checksum(kind: str, texts: list[str]) -> str:
    """sha256 (hex) of the step kind and its texts in order."""
    payload = json.dumps({"kind": kind, "texts": texts}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _paths(step: MigrationStep) -> tuple[str, ...]:
    if step.kind == "sql":
        return step.files
    if step.kind == "job" and step.job:
        return (step.job,)
    raise PermanentError(f"migration step kind {step.kind!r} needs files (sql) or job (job)")


def resolve_step(desired: DesiredState, migration: Migration, action: str) -> StepTexts:
    """The texts and checksum of ``migration``'s ``action`` step at this revision."""
    step = step_of(migration, action)
    if step is None:
        return StepTexts(action, "none", (), checksum("none", []), 0)
    pairs: list[tuple[str, str]] = []
    for path in _paths(step):
        if path not in desired.files:
            raise PermanentError(f"migration {migration.id} {action}: file {path} is not "
                                 f"in the repository at {desired.revision}")
        pairs.append((path, desired.files[path]))
    return StepTexts(action, step.kind, tuple(pairs),
                     checksum(step.kind, [t for _, t in pairs]), step.timeout_seconds)
