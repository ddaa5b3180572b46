"""Blue-green in one cell: a second colour beside the serving one, the switch, the
switch back, and scaling the old colour to zero.

Owns: the object set of a ``strategy: blueGreen`` service in one cell and its record in
the service's inventory (``Inventory.colours``). ``converge`` makes a version run: it
heals the serving colour; deploys a newer version as the standby colour (replacing what
that colour ran, e.g. the old colour scaled to zero); and for an older version switches
straight back to a colour still running it (the instant rollback; the other colour is
removed) or, when none does, deploys it and switches. ``switch`` points the Services at
the standby colour; ``scale_down`` scales the colour that no longer serves to zero. Every
write goes through the same claim check, apply, prune and inventory record as a rolling
service (``apply.py``); the shapes are ``reconciler.core.bluegreen``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.apply import (
    ApplyResult,
    Change,
    apply_object,
    check_claims,
    ensure_namespace,
    prune_object,
)
from reconciler.adapters.kubernetes.client import KubeClient
from reconciler.adapters.kubernetes.inventory import Inventory, read_inventory, write_inventory
from reconciler.adapters.kubernetes.objects import apply_order, decorate, ref_of
from reconciler.core import bluegreen as bg
from reconciler.core import traffic as tr
from reconciler.core.hashing import manifest_hash
from reconciler.core.model import Cell
from reconciler.core.versions import Version

Obj = dict[str, Any]


@dataclass(frozen=True)
class _Where:
    kube: KubeClient
    cell: Cell
    service: str
    shape: tr.Shape = tr.UNSHAPED

    @property
    def ns(self) -> str:
        return self.cell.kubernetes.namespace

    def inventory(self) -> tuple[Inventory, bg.Colours]:
        inv = read_inventory(self.kube, self.cell.name, self.service, self.ns) or Inventory()
        return inv, bg.Colours.from_text(inv.colours)


def _decorated(w: _Where, objs: Iterable[Mapping[str, Any]], version: str,
               previous: str | None) -> list[Obj]:
    out = [dict(o) for o in objs]
    h = manifest_hash(out)
    return [decorate(o, w.cell.name, w.service, version, w.ns, h, previous) for o in out]


def _write(w: _Where, old: Inventory, objects: list[Obj], version: str | None,
           previous: str | None, colours: bg.Colours) -> ApplyResult:
    """Apply ``objects`` (decorated), prune what the record held and they do not, and
    record them with ``colours`` — the sequence of ``apply.apply_service``."""
    intent = sorted(objects, key=apply_order)
    check_claims(w.kube, intent, w.cell.name, w.service, w.ns)
    refs = tuple(ref_of(o) for o in intent)
    write_inventory(w.kube, w.cell.name, w.service, w.ns, Inventory(
        old.version, old.previous, old.applied_hash, old.objects, refs, old.colours))
    changes: list[Change] = [apply_object(w.kube, o) for o in intent]
    stale = sorted((set(old.refs) | set(old.pending)) - set(refs), reverse=True)
    changes += [prune_object(w.kube, r, w.cell.name, w.service) for r in stale]
    h = manifest_hash(intent)
    write_inventory(w.kube, w.cell.name, w.service, w.ns,
                    Inventory(version, previous, h, tuple(intent), (), colours.to_text()))
    return ApplyResult(w.cell.name, w.service, version or "", h, tuple(changes))


def _parts(rendered: Iterable[Mapping[str, Any]]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {"workload": [], "route": [], "shared": [], "httproute": []}
    for o in rendered:
        out[bg.kind_of(o)].append(dict(o))
    return out


def _recorded(inv: Inventory, kind: str, colour: str | None = None) -> list[Obj]:
    """Recorded objects of one kind (workloads: of ``colour`` only)."""
    return [dict(o) for o in inv.objects if bg.kind_of(o) == kind and
            (kind != "workload" or (colour is not None and bg.colour_of(o) == colour))]


def _colour_objs(w: _Where, parts: dict[str, list[Obj]], colour: str) -> list[Obj]:
    """The rendered workloads as ``colour``, with a Service per colour when shaped."""
    out = [bg.coloured(o, colour) for o in parts["workload"]]
    if w.shape.coloured:
        out += [tr.coloured_service(o, colour) for o in parts["route"]]
    return out


def _bases(routes: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str((o.get("metadata") or {}).get("name")) for o in routes]


def _http(w: _Where, routes: Iterable[Mapping[str, Any]], bases: list[str],
          split: tr.Split) -> list[Obj]:
    """The service's HTTPRoutes split between the colours (see ``core.traffic``)."""
    return [tr.shaped(o, bases, split, w.shape) for o in routes]


def _split(colours: bg.Colours) -> tr.Split:
    """Where the recorded colours send the cell's requests."""
    active = colours.active or colours.standby
    standby = colours.standby if colours.active and colours.standby in colours.versions \
        else None
    return tr.Split(active, standby, colours.weight if standby else 0,
                    colours.mirror and standby is not None)


def _older(a: str, b: str | None) -> bool:
    return b is not None and Version.parse(a) < Version.parse(b)


def converge(kube: KubeClient, cell: Cell, service: str, version: str,
             rendered: Iterable[Mapping[str, Any]], shape: tr.Shape = tr.UNSHAPED
             ) -> ApplyResult:
    """Make ``version`` run in the cell (see the module docstring)."""
    w = _Where(kube, cell, service, shape)
    parts = _parts(rendered)
    if shape.coloured and not tr.routes_to(parts["httproute"], _bases(parts["route"])):
        raise PermanentError(f"{service} renders no HTTPRoute whose backendRefs name one of "
                             f"its Services in {cell.name}: a canary or shadow moves its "
                             "traffic through one; nothing applied")
    ensure_namespace(kube, w.ns)
    inv, colours = w.inventory()
    running = colours.colour_running(version)
    if running is not None and running == colours.active and inv.version == version:
        return _heal(w, inv, colours, version, parts)
    if _older(version, inv.version):  # a rollback
        if running is None:
            _deploy_standby(w, inv, colours, version, parts)
            inv, colours = w.inventory()
            running = colours.standby
        return _switch_back(w, inv, colours, running)
    return _deploy_standby(w, inv, colours, version, parts)


def _heal(w: _Where, inv: Inventory, colours: bg.Colours, version: str,
          parts: dict[str, list[Obj]]) -> ApplyResult:
    """Re-apply the serving colour; a standby on a newer version is dropped (an abort
    before the switch), one on an older version kept (the old colour)."""
    active, standby = colours.active or bg.COLOURS[0], colours.standby
    sb_version = colours.versions.get(standby)
    keep = sb_version is not None and _older(sb_version, version)
    kept = _recorded(inv, "workload", standby) if keep else []
    after = colours if keep else colours.without(standby)
    split = tr.Split(active, standby if keep else None)  # an aborted canary: weight 0
    objs = _decorated(w, [*parts["shared"], *_colour_objs(w, parts, active),
                          *(bg.routed(o, active) for o in parts["route"]),
                          *_http(w, parts["httproute"], _bases(parts["route"]), split)],
                      version, inv.previous)
    return _write(w, inv, [*objs, *kept], inv.version, inv.previous, after)


def _switch_back(w: _Where, inv: Inventory, colours: bg.Colours, colour: str) -> ApplyResult:
    """Traffic to ``colour`` at once; the other colour removed."""
    version = colours.versions[colour]
    routes = [bg.routed(o, colour) for o in _recorded(inv, "route")]
    http = _http(w, _recorded(inv, "httproute"), _bases(routes), tr.Split(colour))
    objs = [*_recorded(inv, "shared"), *_recorded(inv, "workload", colour), *routes, *http]
    return _write(w, inv, objs, version, inv.version, bg.Colours(colour, {colour: version}))


def _deploy_standby(w: _Where, inv: Inventory, colours: bg.Colours, version: str,
                    parts: dict[str, list[Obj]]) -> ApplyResult:
    """``version`` as the standby colour beside the serving one (on a first install the
    Services come with it, pointing at it: nothing serves yet)."""
    standby = colours.standby
    after = colours.with_version(standby, version)
    new = [*parts["shared"], *_colour_objs(w, parts, standby)]
    routes = _recorded(inv, "route")
    if colours.active is None:
        new += [bg.routed(o, standby) for o in parts["route"]]
        routes = []
    # the new colour takes no traffic yet: weight 0, no mirror
    new += _http(w, parts["httproute"], _bases(parts["route"]), _split(after))
    objs = [*_decorated(w, new, version, inv.version),
            *_recorded(inv, "workload", colours.active), *routes,
            *_missing_active_services(w, inv, colours, parts)]
    return _write(w, inv, objs, inv.version, inv.previous, after)


def _missing_active_services(w: _Where, inv: Inventory, colours: bg.Colours,
                             parts: dict[str, list[Obj]]) -> list[Obj]:
    """The serving colour's own Services when the routes now name them but it has none
    (the service became a canary, or got a shadow, while that colour served)."""
    active = colours.active
    if not w.shape.coloured or active is None or any(
            o.get("kind") == "Service" and bg.colour_of(o) == active for o in inv.objects):
        return []
    return _decorated(w, [tr.coloured_service(o, active) for o in parts["route"]],
                      inv.version or "", inv.previous)


def switch(kube: KubeClient, cell: Cell, service: str, version: str,
           shape: tr.Shape = tr.UNSHAPED, since: str | None = None) -> ApplyResult:
    """Point the Services (and the HTTPRoutes, in full) at the colour running
    ``version`` (the standby; it must)."""
    w = _Where(kube, cell, service, shape)
    inv, colours = w.inventory()
    colour = colours.colour_running(version)
    if colour is None:
        raise PermanentError(f"no colour of {service} runs {version} in {cell.name}: "
                             "nothing to switch to")
    if colour == colours.active and inv.version == version:
        return ApplyResult(cell.name, service, version, inv.applied_hash or "", ())
    after = replace(colours, active=colour, weight=0, mirror=False, since=since)
    routes = [bg.routed(o, colour) for o in _recorded(inv, "route")]
    http = _http(w, _recorded(inv, "httproute"), _bases(routes), _split(after))
    kept = [dict(o) for o in inv.objects if bg.kind_of(o) not in ("route", "httproute")]
    return _write(w, inv, [*kept, *routes, *http], version, inv.version, after)


def shift(kube: KubeClient, cell: Cell, service: str, version: str, weight: int,
          mirror: bool, since: str, shape: tr.Shape) -> ApplyResult:
    """The standby colour (running ``version``) takes ``weight`` percent of the cell's
    requests through the HTTPRoutes, or a mirror of them; recorded ``since``."""
    if not 0 <= weight < 100:
        raise PermanentError(f"a canary weight must be 0-99 before the switch, not {weight}")
    w = _Where(kube, cell, service, shape)
    inv, colours = w.inventory()
    if colours.active is None or colours.versions.get(colours.standby) != version or \
            colours.standby in colours.scaled_down:
        raise PermanentError(f"{service} in {cell.name} has no canary of {version} beside "
                             "a serving colour: nothing to shift")
    after = colours.shifted(weight, mirror, since)
    http = _http(w, _recorded(inv, "httproute"), _bases(_recorded(inv, "route")),
                 _split(after))
    if not http:
        raise PermanentError(f"{service} has no HTTPRoute in {cell.name}: a canary or "
                             "shadow needs one routing to its Service")
    kept = [dict(o) for o in inv.objects if bg.kind_of(o) != "httproute"]
    return _write(w, inv, [*kept, *http], inv.version, inv.previous, after)


def scale_down(kube: KubeClient, cell: Cell, service: str) -> ApplyResult:
    """Scale the colour that does not serve to zero (kept until the next version)."""
    w = _Where(kube, cell, service)
    inv, colours = w.inventory()
    if colours.active is None:
        raise PermanentError(f"{service} in {cell.name} has never switched: nothing to scale")
    standby = colours.standby
    objs = [bg.scaled_to_zero(o) if bg.colour_of(o) == standby and bg.kind_of(o) == "workload"
            else dict(o) for o in inv.objects]
    return _write(w, inv, objs, inv.version, inv.previous,
                  replace(colours, scaled_down=colours.scaled_down | {standby}))
