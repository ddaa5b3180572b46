"""Feature flags as releases: a Flag stands in the planner for a service whose versions
are its variants, and is delivered per cell in flagd's flag-definition format.

Owns: the name of a flag's service (``flag.<name>``: no real service may contain a dot),
a variant as a version (``0.<rank>.0-<variant>``: the default variant ranks 0, the others
1, 2, ... in the order the file lists them, so turning a flag on is an upgrade promoted
wave by wave, and turning it off — to the default variant — a rollback applied at once),
the Service and Release the loader adds for each flag, and the flagd document and
ConfigMap a cell gets. Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from reconciler.core.model import (
    Cell,
    Flag,
    HealthSettings,
    Release,
    Service,
)
from reconciler.core.plan import WavePlan
from reconciler.core.versions import Version

PREFIX = "flag."
#: The flag-definition schema the rendered documents declare (and are tested against).
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"
#: The ConfigMap key holding the cell's definition of the flag.
CONFIGMAP_KEY = "flags.flagd.json"


def service_name(flag: str) -> str:
    """The planner's service name of flag ``flag``."""
    return PREFIX + flag


def flag_name(service: str) -> str | None:
    """The flag a service name stands for, or None for a real service."""
    return service[len(PREFIX):] if service.startswith(PREFIX) else None


def configmap_name(flag: str) -> str:
    """The ConfigMap holding a flag's definition in a cell's namespace."""
    return f"flagd-{flag}"


def rank(variants: list[str], default: str, variant: str) -> int:
    """0 for the default variant, 1.. for the others in file order."""
    if variant == default:
        return 0
    others = [v for v in variants if v != default]
    return others.index(variant) + 1 if variant in others else len(others) + 1


def as_version(variants: list[str], default: str, variant: str) -> Version:
    """The version standing for ``variant``."""
    r = rank(variants, default, variant)
    return Version(0, r, 0, variant, text=f"0.{r}.0-{variant}")


_FLAG_VERSION = re.compile(r"^0\.\d+\.0-(.+)$")


def variant_of(version: str | Version | None) -> str | None:
    """The variant a flag version stands for (its pre-release part: the version is
    also a Kubernetes label value, where ``+`` is not allowed)."""
    if version is None:
        return None
    m = _FLAG_VERSION.match(str(version))
    return m[1] if m else str(version)


def shown(service: str, version: str | Version | None) -> str | None:
    """A version as people read it: a flag's variant name, a service's version."""
    if version is None:
        return None
    return variant_of(version) if flag_name(service) is not None else str(version)


def shown_service(service: str) -> str:
    """``flag checkout-v2`` for a flag's service, the name for a real service."""
    name = flag_name(service)
    return f"flag {name}" if name is not None else service


def stand_ins(flag: Flag) -> tuple[Service, Release]:
    """The Service and Release the planner sees for ``flag``."""
    name = service_name(flag.name)
    svc = Service(name, (), None, HealthSettings(), (), (), flag.source, flag=flag.name)
    return svc, Release(name, flag.entries, flag.source)


def definition(flag: Flag, variant: str) -> dict[str, Any]:
    """The flagd flag-definition document of ``flag`` in a cell serving ``variant``.

    The cell's variant is flagd's ``defaultVariant``; the flag's targeting applies only
    where the cell's variant is not the flag's default one (off means off for everyone).
    """
    body: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {v.name: json.loads(v.value) for v in flag.variants},
        "defaultVariant": variant,
    }
    if flag.targeting is not None and variant != flag.default_variant:
        body["targeting"] = json.loads(flag.targeting)
    return {"$schema": FLAGD_SCHEMA, "flags": {flag.name: body}}


def configmap(flag: Flag, cell: Cell, variant: str) -> dict[str, Any]:
    """The ConfigMap a cell gets for ``flag`` serving ``variant`` (the applier adds our
    ownership labels)."""
    text = json.dumps(definition(flag, variant), indent=2, sort_keys=True) + "\n"
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": configmap_name(flag.name),
                     "namespace": cell.kubernetes.namespace,
                     "labels": {"reconciler.dev/flag": flag.name},
                     "annotations": {"reconciler.dev/flag-variant": variant}},
        "data": {CONFIGMAP_KEY: text},
    }


def summary(service: str, waves: Sequence[WavePlan]) -> str:
    """``flag checkout-v2: off → on, wave 2/4`` (the first wave not done), or the variant
    the flag serves everywhere when nothing moves."""
    name = flag_name(service)
    moving = [c for w in waves for c in w.cells if c.action != "none"]
    targets = sorted({shown(service, c.target_version) or "-" for c in moving})
    if not moving:
        served = sorted({shown(service, c.live_version) or "-" for w in waves
                         for c in w.cells})
        return f"flag {name}: {', '.join(served) or '-'}"
    froms = sorted({shown(service, c.live_version) or "-" for c in moving})
    at = next((w for w in waves if w.state not in ("done", "idle")), None)
    where = f", wave {at.index + 1}/{len(waves)}" if at is not None else ""
    return f"flag {name}: {'/'.join(froms)} → {'/'.join(targets)}{where}"
