"""Flag (flags/<name>.yaml): variants, a default variant, targeting, the variant per group."""

from __future__ import annotations

import json
from typing import Any

from reconciler.core.flags import as_version
from reconciler.core.kinds import Built, Collector
from reconciler.core.model import Flag, FlagRequirement, FlagVariant, ReleaseEntry, SourceRef
from reconciler.core.versions import VersionRange
from reconciler.core.yamldoc import plain, position


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _requires(c: Collector, i: int, raw: dict[str, Any] | None) -> FlagRequirement | None:
    if raw is None:
        return None
    keys: list[str | int] = ["spec", "variants", i, "requires"]
    text = str(raw["version"])
    try:
        versions = VersionRange.parse(text)
    except ValueError as e:
        c.add([*keys, "version"], str(e))
        versions = VersionRange.parse(">=0.0.0")
    return FlagRequirement(str(raw["service"]), versions, text,
                           SourceRef(c.path, *position(c.doc, [*keys, "service"])))


def _variants(c: Collector, raws: list[dict[str, Any]]) -> tuple[FlagVariant, ...]:
    out: list[FlagVariant] = []
    first_kind = _kind(plain(raws[0]["value"]))
    for i, raw in enumerate(raws):
        name, value = str(raw["name"]), plain(raw["value"])
        keys: list[str | int] = ["spec", "variants", i]
        if any(v.name == name for v in out):
            c.add([*keys, "name"], f"duplicate variant {name!r}")
        if _kind(value) != first_kind:
            c.add([*keys, "value"], f"variant {name!r} is a {_kind(value)}, the first "
                                    f"variant a {first_kind}: flagd needs one type per flag")
        out.append(FlagVariant(name, json.dumps(value, sort_keys=True),
                               _requires(c, i, raw.get("requires")),
                               SourceRef(c.path, *position(c.doc, keys))))
    return tuple(out)


def _entries(c: Collector, spec: dict[str, Any], names: list[str],
             default: str) -> tuple[ReleaseEntry, ...]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(spec["groups"]):
        keys: list[str | int] = ["spec", "groups", i]
        for j, g in enumerate(raw["groups"]):
            if g in seen:
                c.add([*keys, "groups", j],
                      f"group {g!r} already has a variant in entry {seen[g] + 1}")
            seen.setdefault(g, i)
        variant = str(raw["variant"])
        if variant not in names:
            c.add([*keys, "variant"], f"unknown variant {variant!r} (variants: "
                                      f"{', '.join(names)})")
        out.append(ReleaseEntry(tuple(str(g) for g in raw["groups"]),
                                as_version(names, default, variant),
                                SourceRef(c.path, *position(c.doc, keys))))
    return tuple(out)


def build(path: str, doc: Any) -> Built:
    """Build a Flag from a schema-valid document."""
    c = Collector(path, doc)
    spec = doc["spec"]
    variants = _variants(c, list(spec["variants"]))
    names = [v.name for v in variants]
    default = str(spec["defaultVariant"])
    if default not in names:
        c.add(["spec", "defaultVariant"], f"default variant {default!r} is not one of the "
                                          f"variants ({', '.join(names)})")
    targeting = spec.get("targeting")
    text = json.dumps(plain(targeting), sort_keys=True) if targeting is not None else None
    flag = Flag(str(doc["metadata"]["name"]), variants, default, text,
                _entries(c, spec, names, default), SourceRef(path, 1, 1))
    return Built("Flag", flag.name, flag, tuple(c.problems))
