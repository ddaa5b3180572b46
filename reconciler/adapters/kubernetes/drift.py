"""Drift: how a live object differs from the manifest we applied, and who changed it.

Owns: walking the applied manifest's leaves (lists of named items matched by name),
comparing each with the live object, and naming the field manager that owns the
changed field (from ``metadata.managedFields``). A field that differs but is still
owned by us alone is a server-side normalisation, not drift. Pure: objects in, Drift
values out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.adapters.kubernetes.objects import FIELD_MANAGER, Ref
from reconciler.core.live import Drift

_MISSING = object()
_SKIP = {("metadata", "namespace")}


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and "name" in v for v in value)


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """(display path, lookup steps, value) of every leaf; named list items by name."""
    yield from _leaves(obj, path, ())


def _leaves(obj: Any, path: str, steps: tuple[Any, ...]) -> Iterator[
        tuple[str, tuple[Any, ...], Any]]:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            if (*steps, k)[:2] in _SKIP or (not steps and k == "status"):
                continue
            yield from _leaves(v, f"{path}.{k}" if path else str(k), (*steps, k))
    elif _named_list(obj):
        for item in obj:
            key = ("name", item["name"])
            yield from _leaves(item, f"{path}[name={item['name']}]", (*steps, key))
    elif obj not in (None, {}, []):
        yield path, steps, obj


def lookup(obj: Any, steps: tuple[Any, ...]) -> Any:
    """Follow ``steps`` (keys, or ("name", x) to pick a named list item) into ``obj``."""
    cur = obj
    for step in steps:
        if isinstance(step, tuple):
            if not isinstance(cur, list):
                return _MISSING
            cur = next((i for i in cur if isinstance(i, dict) and i.get("name") == step[1]),
                       _MISSING)
        elif isinstance(cur, dict) and step in cur:
            cur = cur[step]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _fields_key(key: str) -> str:
    """One FieldsV1 key as a display path segment."""
    if key.startswith("f:"):
        return "." + key[2:]
    if key.startswith("k:"):
        try:
            d = json.loads(key[2:])
        except ValueError:
            return f"[{key[2:]}]"
        return "[" + ",".join(f"{k}={v}" for k, v in sorted(d.items())) + "]"
    if key.startswith(("v:", "i:")):
        return f"[{key[2:]}]"
    return ""


def field_paths(fields: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every path a FieldsV1 set names (leaves and the parents it marks with ``.``)."""
    for key, sub in fields.items():
        if key == ".":
            continue
        path = prefix + _fields_key(key)
        yield path.lstrip(".")
        if isinstance(sub, dict) and sub:
            yield from field_paths(sub, path)


def owners(live: Mapping[str, Any]) -> dict[str, set[str]]:
    """Display path -> managers owning it."""
    out: dict[str, set[str]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        for path in field_paths(entry.get("fieldsV1") or {}):
            out.setdefault(path, set()).add(str(entry.get("manager", "")))
    return out


def _same(want: Any, have: Any) -> bool:
    if want == have:
        return True
    scalar = (str, int, float, bool)
    return isinstance(want, scalar) and isinstance(have, scalar) and str(want) == str(have)


def _brief(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def object_drift(ref: Ref, intent: Mapping[str, Any],
                 live: Mapping[str, Any] | None) -> list[Drift]:
    """Every out-of-band change of ``live`` relative to the applied ``intent``."""
    if live is None:
        return [Drift(ref.kind, ref.name, "", "", "object deleted")]
    who = owners(live)
    out: list[Drift] = []
    for path, steps, want in leaves(intent):
        have = lookup(live, steps)
        if have is _MISSING:
            out.append(Drift(ref.kind, ref.name, path, "", f"removed (applied {_brief(want)})"))
            continue
        if _same(want, have):
            continue
        managers = who.get(path, set())
        if FIELD_MANAGER not in managers:  # ours alone and different: a normalisation
            others = sorted(managers - {FIELD_MANAGER})
            out.append(Drift(ref.kind, ref.name, path, ",".join(others),
                             f"applied {_brief(want)}, live {_brief(have)}"))
    return out
