"""Traffic between a service's two colours through its own HTTPRoutes. Pure.

Owns: the shapes a ``canary`` (weights) or shadowed (``RequestMirror``) service's objects
take in one cell — a Service per colour (``<name>-<colour>``, selecting that colour's
pods) and every rule of the service's HTTPRoutes whose backends name one of the
service's own Services rewritten to the colours: the serving colour at ``100 - weight``,
the new one at ``weight``, and while shadowing a ``RequestMirror`` filter to the new
colour. Only backend references naming one of the service's own Services (same
namespace, core group, kind Service) are touched; any other reference and filter is
left as the template wrote it — a pull request's strategy fields can name no other
object. The reshaping is idempotent: a shaped route reshaped gives the same route.
See docs/strategies.md.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.bluegreen import COLOUR_LABEL, COLOURS
from reconciler.core.model import Service

ROUTE_KIND = "HTTPRoute"
MIRROR = "RequestMirror"


@dataclass(frozen=True)
class Shape:
    """How a service's traffic is shaped: ``weighted`` (strategy canary: backends per
    colour with weights) and ``coloured`` (a Service per colour: canary or shadow)."""

    weighted: bool = False
    coloured: bool = False


#: A blueGreen service without a shadow phase: its HTTPRoutes are left as written.
UNSHAPED = Shape()


@dataclass(frozen=True)
class Split:
    """Where a cell's requests go: ``active`` serves; ``standby`` (None: no other colour)
    takes ``weight`` percent of them (canary) and/or a mirror of all of them."""

    active: str
    standby: str | None = None
    weight: int = 0
    mirror: bool = False


def shape_of(service: Service) -> Shape:
    """The shape of ``service``'s traffic objects (its strategy and shadow phase)."""
    weighted = service.strategy == "canary"
    return Shape(weighted, weighted or service.traffic.shadow_seconds > 0)


def coloured_service(svc: Mapping[str, Any], colour: str) -> dict[str, Any]:
    """``svc`` as ``<name>-<colour>``, selecting only the pods of ``colour``."""
    out = copy.deepcopy(dict(svc))
    meta = out.setdefault("metadata", {})
    meta["name"] = f"{meta['name']}-{colour}"
    meta["labels"] = {**(meta.get("labels") or {}), COLOUR_LABEL: colour}
    spec = out.setdefault("spec", {})
    spec["selector"] = {**(spec.get("selector") or {}), COLOUR_LABEL: colour}
    for key in ("clusterIP", "clusterIPs"):  # allocated per Service by the API server
        spec.pop(key, None)
    return out


def _ours(ref: Mapping[str, Any], bases: frozenset[str]) -> str | None:
    """The base Service a backend reference names (``shop``, ``shop-blue``...), or None
    when it names anything else (another kind, group or namespace)."""
    if ref.get("kind", "Service") != "Service" or ref.get("group", "") not in ("", None):
        return None
    if "namespace" in ref:
        return None
    name = str(ref.get("name", ""))
    if name in bases:
        return name
    for colour in COLOURS:
        stem = name[: -len(colour) - 1]
        if name.endswith(f"-{colour}") and stem in bases:
            return stem
    return None


def _backends(refs: list[Mapping[str, Any]], bases: frozenset[str], split: Split,
              shape: Shape) -> tuple[list[dict[str, Any]], str | None, Any]:
    """The rule's rewritten backend references, and the first base and its port."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    first, port = None, None
    for ref in refs:
        base = _ours(ref, bases)
        if base is None:
            out.append(dict(ref))
            continue
        if base in seen:
            continue
        seen.add(base)
        if first is None:
            first, port = base, ref.get("port")
        if not shape.weighted:
            out.append({**ref, "name": base})
            continue
        out.append({**ref, "name": f"{base}-{split.active}", "weight": 100 - split.weight
                    if split.standby else 100})
        if split.standby:
            out.append({**ref, "name": f"{base}-{split.standby}", "weight": split.weight})
    return out, first, port


def shaped(route: Mapping[str, Any], bases: Iterable[str], split: Split,
           shape: Shape) -> dict[str, Any]:
    """``route`` with its rules' backends split as ``split`` says (see the module)."""
    names = frozenset(bases)
    out = copy.deepcopy(dict(route))
    for rule in (out.get("spec") or {}).get("rules") or []:
        refs, first, port = _backends(list(rule.get("backendRefs") or []), names, split, shape)
        if refs:
            rule["backendRefs"] = refs
        filters = [f for f in rule.get("filters") or [] if not (
            f.get("type") == MIRROR and _ours(
                (f.get("requestMirror") or {}).get("backendRef") or {}, names) is not None)]
        if split.mirror and split.standby and first is not None and shape.coloured:
            ref: dict[str, Any] = {"name": f"{first}-{split.standby}"}
            if port is not None:
                ref["port"] = port
            filters.append({"type": MIRROR, "requestMirror": {"backendRef": ref}})
        if filters:
            rule["filters"] = filters
        else:
            rule.pop("filters", None)
    return out


def routes_to(routes: Iterable[Mapping[str, Any]], bases: Iterable[str]) -> bool:
    """Whether some rule of ``routes`` has a backend naming one of ``bases`` (the
    service's own Services): a canary or shadow needs one to move traffic through."""
    names = frozenset(bases)
    return any(_ours(ref, names) is not None for route in routes
               for rule in (route.get("spec") or {}).get("rules") or []
               for ref in rule.get("backendRefs") or [])


def weights(route: Mapping[str, Any], service: str) -> dict[str, int]:
    """Backend name -> weight of the first rule naming ``service``'s colours (for
    tests and the dashboard)."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        got = {str(r.get("name")): int(r.get("weight", 1)) for r in rule.get("backendRefs") or []
               if str(r.get("name", "")).startswith(f"{service}-")}
        if got:
            return got
    return {}


def mirrors(route: Mapping[str, Any]) -> list[str]:
    """The backends ``route``'s rules mirror to."""
    return [str(((f.get("requestMirror") or {}).get("backendRef") or {}).get("name"))
            for rule in (route.get("spec") or {}).get("rules") or []
            for f in rule.get("filters") or [] if f.get("type") == MIRROR]
