"""Blue-green: the shapes of a service's objects in two colours. Pure.

Owns: splitting a service's rendered objects into *workloads* (Deployments: one copy per
colour, ``<name>-<colour>``, selecting and labelling their pods with
``reconciler.dev/colour``), *routes* (Services: their selector picks the active colour —
the switch) and *shared* objects (everything else, applied once); and the recorded state
of the two colours (which one serves, the version each runs, which is scaled to zero).
See docs/strategies.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

COLOUR_LABEL = "reconciler.dev/colour"
COLOURS = ("blue", "green")
WORKLOAD_KINDS = frozenset({"Deployment"})
ROUTE_KINDS = frozenset({"Service"})


def other(colour: str) -> str:
    """The other colour."""
    return COLOURS[1] if colour == COLOURS[0] else COLOURS[0]


def kind_of(obj: Mapping[str, Any]) -> str:
    """workload (a Deployment, or a Service of one colour), route (a Service: its
    selector is the switch), httproute (shaped by ``core.traffic``) or shared."""
    kind = str(obj.get("kind"))
    if kind in ROUTE_KINDS and colour_of(obj) is not None:
        return "workload"
    return "workload" if kind in WORKLOAD_KINDS else "route" if kind in ROUTE_KINDS \
        else "httproute" if kind == "HTTPRoute" else "shared"


def coloured(obj: Mapping[str, Any], colour: str) -> dict[str, Any]:
    """A workload as ``colour``: renamed, its selector and pod labels carry the colour."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    meta["name"] = f"{meta['name']}-{colour}"
    meta["labels"] = {**(meta.get("labels") or {}), COLOUR_LABEL: colour}
    spec = out.setdefault("spec", {})
    selector = spec.setdefault("selector", {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), COLOUR_LABEL: colour}
    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), COLOUR_LABEL: colour}
    return out


def routed(obj: Mapping[str, Any], colour: str) -> dict[str, Any]:
    """A Service sending its traffic to the pods of ``colour``."""
    out = copy.deepcopy(dict(obj))
    spec = out.setdefault("spec", {})
    spec["selector"] = {**(spec.get("selector") or {}), COLOUR_LABEL: colour}
    return out


def scaled_to_zero(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A workload with no replicas (kept, so the next version replaces it)."""
    out = copy.deepcopy(dict(obj))
    if str(out.get("kind")) in WORKLOAD_KINDS:
        out.setdefault("spec", {})["replicas"] = 0
    return out


def colour_of(obj: Mapping[str, Any]) -> str | None:
    """The colour label of a recorded object."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(COLOUR_LABEL)
    return str(value) if value in COLOURS else None


@dataclass(frozen=True)
class Colours:
    """The recorded state: the colour serving (None before the first switch), the
    version each colour runs, and the colours scaled to zero."""

    active: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    scaled_down: frozenset[str] = frozenset()
    #: canary: the standby's share of the cell's requests in percent; shadow: whether
    #: they are mirrored to it; when the current weight or mirror was set (ISO time).
    weight: int = 0
    mirror: bool = False
    since: str | None = None

    @property
    def standby(self) -> str:
        """The colour that does not serve (blue before the first switch)."""
        return other(self.active) if self.active else COLOURS[0]

    def colour_running(self, version: str) -> str | None:
        """A colour running ``version`` with replicas (the active one first)."""
        for colour in (self.active, self.standby):
            if colour and self.versions.get(colour) == version and \
                    colour not in self.scaled_down:
                return colour
        return None

    def with_version(self, colour: str, version: str) -> Colours:
        """``colour`` runs ``version`` (new: no traffic yet)."""
        return replace(self, versions={**self.versions, colour: version},
                       scaled_down=self.scaled_down - {colour}, weight=0, mirror=False,
                       since=None)

    def without(self, colour: str) -> Colours:
        """``colour`` removed (and with it its traffic)."""
        return replace(self, versions={c: v for c, v in self.versions.items() if c != colour},
                       scaled_down=self.scaled_down - {colour}, weight=0, mirror=False,
                       since=None)

    def shifted(self, weight: int, mirror: bool, since: str) -> Colours:
        """The standby takes ``weight`` percent (and a mirror) from ``since``."""
        return replace(self, weight=weight, mirror=mirror, since=since)

    def to_text(self) -> str:
        doc: dict[str, Any] = {"active": self.active, "versions": dict(self.versions),
                               "scaledDown": sorted(self.scaled_down)}
        if self.weight or self.mirror or self.since:
            doc.update(weight=self.weight, mirror=self.mirror, since=self.since)
        return json.dumps(doc, sort_keys=True)

    @staticmethod
    def from_text(text: str) -> Colours:
        doc = json.loads(text) if text else {}
        return Colours(doc.get("active"), dict(doc.get("versions") or {}),
                       frozenset(doc.get("scaledDown") or ()), int(doc.get("weight") or 0),
                       bool(doc.get("mirror")), doc.get("since"))


def workloads(objs: Iterable[Mapping[str, Any]], colour: str) -> list[dict[str, Any]]:
    """The recorded objects of one colour."""
    return [dict(o) for o in objs if colour_of(o) == colour]
