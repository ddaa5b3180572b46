"""Migration (migrations/<svc>/<id>.yaml): expand / contract / rollback and version ranges."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from reconciler.core.durations import resolve, seconds
from reconciler.core.kinds import Built, Collector
from reconciler.core.model import Migration, MigrationStep, SourceRef
from reconciler.core.versions import VersionRange


class MigrationAction(StrEnum):
    """One phase of a migration, as the planner asks for it and the ledger records it."""

    EXPAND = "expand"
    CONTRACT = "contract"
    ROLLBACK = "rollback"


def _range(c: Collector, key: str, text: str) -> VersionRange:
    try:
        return VersionRange.parse(text)
    except ValueError as e:
        c.add(["spec", key], f"{key}: {e}")
        return VersionRange((), text)


def _step(c: Collector, key: MigrationAction, raw: dict[str, Any] | None) -> MigrationStep | None:
    if raw is None:
        return None
    files: list[str] = []
    for i, rel in enumerate(raw.get("sql", [])):
        try:
            files.append(resolve(c.path, str(rel)))
        except ValueError as e:
            c.add(["spec", key, "sql", i], str(e))
    job = None
    if "job" in raw:
        try:
            job = resolve(c.path, str(raw["job"]))
        except ValueError as e:
            c.add(["spec", key, "job"], str(e))
    return MigrationStep("job" if "job" in raw else "sql", tuple(files), job,
                         seconds(raw.get("timeout"), 600))


def build(path: str, doc: Any) -> Built:
    """Build a Migration from a schema-valid document."""
    c = Collector(path, doc)
    spec, name = doc["spec"], str(doc["metadata"]["name"])
    expand = _step(c, MigrationAction.EXPAND, spec[MigrationAction.EXPAND])
    assert expand is not None
    mig = Migration(
        id=name, service=str(spec["service"]), database=str(spec["database"]),
        required_by=_range(c, "requiredBy", str(spec["requiredBy"])),
        old_shape_used_by=_range(c, "oldShapeUsedBy", str(spec["oldShapeUsedBy"])),
        soak_seconds=seconds(spec.get("soak"), 0), expand=expand,
        contract=_step(c, MigrationAction.CONTRACT, spec.get(MigrationAction.CONTRACT)),
        rollback=_step(c, MigrationAction.ROLLBACK, spec.get(MigrationAction.ROLLBACK)),
        source=SourceRef(path, 1, 1))
    return Built("Migration", name, mig, tuple(c.problems))
