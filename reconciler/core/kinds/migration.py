"""Migration (migrations/<svc>/<id>.yaml): expand / contract / rollback and version ranges."""

from __future__ import annotations

from typing import Any

from reconciler.core.durations import resolve, seconds
from reconciler.core.kinds import Built, Collector
from reconciler.core.model import Migration, MigrationStep, SourceRef
from reconciler.core.versions import VersionRange


def _range(c: Collector, key: str, text: str) -> VersionRange:
    try:
        return VersionRange.parse(text)
    except ValueError as e:
        c.add(["spec", key], f"{key}: {e}")
        return VersionRange((), text)


def _step(c: Collector, key: str, raw: dict[str, Any] | None) -> MigrationStep | None:
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
    expand = _step(c, "expand", spec["expand"])
    assert expand is not None
    mig = Migration(
        id=name, service=str(spec["service"]), database=str(spec["database"]),
        required_by=_range(c, "requiredBy", str(spec["requiredBy"])),
        old_shape_used_by=_range(c, "oldShapeUsedBy", str(spec["oldShapeUsedBy"])),
        soak_seconds=seconds(spec.get("soak"), 0), expand=expand,
        contract=_step(c, "contract", spec.get("contract")),
        rollback=_step(c, "rollback", spec.get("rollback")),
        source=SourceRef(path, 1, 1))
    return Built("Migration", name, mig, tuple(c.problems))
