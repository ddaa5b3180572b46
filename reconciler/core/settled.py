"""A fleet settled on a desired state: the live snapshot the planner would see after every
wave ran, became healthy and baked. Pure.

Owns: what "settled" means — every cell runs its release's version, Healthy, with its
Terraform inputs applied; every migration a cell's version requires expanded on its
databases, and contracted where a contract step exists and no cell's version still
needs the old shape; each wave's bake (and every soak) over by ``now``. Planning the
same desired state against it gives no step: it is the "before" of a preview
(``reconciler diff``) and ``examples/live-settled.json``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.core.hashing import terraform_input_hash
from reconciler.core.live import (
    LiveSnapshot,
    MigrationLive,
    ServiceLive,
    TerraformLive,
    WaveProgress,
)
from reconciler.core.model import DesiredState, Migration
from reconciler.core.versions import Version


def _contracted(desired: DesiredState, m: Migration) -> bool:
    """Whether a settled fleet has contracted ``m``: it has a contract step and no
    cell's version is in its old-shape range."""
    if m.contract is None:
        return False
    for cell in desired.cells.values():
        v = desired.desired_version(m.service, cell)
        if v is not None and m.old_shape_used_by.contains(v):
            return False
    return True


def _since(desired: DesiredState, now: datetime) -> datetime:
    """A bake start old enough for every bake and soak to be over at ``now``."""
    longest = max((w.bake_seconds for w in desired.fleet.waves), default=0)
    soak = max((m.soak_seconds for m in desired.migrations), default=0)
    return now - timedelta(seconds=longest + soak + 86_400)


def settled_snapshot(desired: DesiredState, now: datetime) -> LiveSnapshot:
    """The live snapshot of ``desired`` fully rolled out, healthy and baked at ``now``."""
    contracted = {(m.service, m.id): _contracted(desired, m) for m in desired.migrations}
    services: dict[str, dict[str, ServiceLive]] = {}
    databases: dict[str, dict[str, dict[str, MigrationLive]]] = {}
    started = _since(desired, now)
    names = sorted(desired.services)
    stacks = {svc for svc in names if desired.services[svc].terraform is not None}
    # what a (service, version) has done to its databases, and its live state without a
    # stack (shared: they are the same for every cell)
    done: dict[tuple[str, Version], tuple[tuple[str, str, MigrationLive], ...]] = {}
    plain: dict[Version, ServiceLive] = {}
    for name in sorted(desired.cells):
        cell = desired.cells[name]
        mine: dict[str, ServiceLive] = {}
        for svc in names:
            version = desired.desired_version(svc, cell)
            if version is None:
                continue
            if svc in stacks:
                tf_hash = terraform_input_hash(desired, cell, svc, str(version))
                mine[svc] = ServiceLive(version, "Healthy", terraform=TerraformLive(tf_hash))
            else:
                live = plain.get(version)
                if live is None:
                    live = plain[version] = ServiceLive(version, "Healthy")
                mine[svc] = live
            steps = done.get((svc, version))
            if steps is None:
                steps = done[(svc, version)] = tuple(
                    (m.database, m.id, MigrationLive(
                        "contracted" if contracted[(m.service, m.id)] else "expanded",
                        started))
                    for m in desired.migrations_of(svc) if m.required_by.contains(version))
            for database, mid, phase in steps:
                databases.setdefault(name, {}).setdefault(database, {})[mid] = phase
        if mine:
            services[name] = mine
    rollout: dict[str, dict[str, WaveProgress]] = {}
    for svc in sorted(desired.services):
        for wave in desired.fleet.waves:
            versions: set[Version] = set()
            for cell in desired.cells_of_wave(wave):
                v = desired.desired_version(svc, cell)
                if v is not None:
                    versions.add(v)
            if versions:
                rollout.setdefault(svc, {})[wave.name] = WaveProgress(min(versions), started)
    return LiveSnapshot(services=services, databases=databases, rollout=rollout)
