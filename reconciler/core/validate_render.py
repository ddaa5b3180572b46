"""Rendering every template for every cell at load time, so `validate` sees what a tick
would render — and checking every rendered object against the Kubernetes API schema
(``kubeschema``, offline).

Owns: which (template, cell) pairs a revision renders — each service's manifests in
every cell whose group has a release of it, and each migration's job template likewise —
and the values that are only known later: a Terraform output becomes a placeholder when
the service's stack declares it (``output "name"``), and is an unknown name otherwise.
Every problem is ``file:line:col: message``, reported once with the first cell it
fails for. Results are cached by (path, text, the values the template actually uses),
so a fleet of identical cells renders a template once per distinct value set. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.core.kubeschema import check_objects
from reconciler.core.model import Cell, DesiredState
from reconciler.core.render import (
    PLACEHOLDER,
    RenderContext,
    RenderError,
    parse_objects,
    render_text,
    template_files,
)
from reconciler.core.yamldoc import Problem

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$")
_STR = "tag:yaml.org,2002:str"
_RESOLVER: Any = yaml.resolver.Resolver()

_OUTPUT = re.compile(r'^\s*output\s+"([A-Za-z_][A-Za-z0-9_-]*)"', re.M)
#: What a declared Terraform output renders as when checking (its value comes later).
OUTPUT_PLACEHOLDER = "terraform-output"
#: Values whose type is not known before apply: no schema error is about them.
_UNKNOWN = frozenset({OUTPUT_PLACEHOLDER})
_MISSING = object()

RenderKey = tuple[str, str, tuple[str, ...]]


@dataclass
class RenderCache:
    """Outcomes by (path, text, used values); keeps what the last two loads used."""

    entries: dict[RenderKey, tuple[Problem, ...]] = field(default_factory=dict)
    previous: set[RenderKey] = field(default_factory=set)
    renders: int = 0  # templates actually rendered (cache misses), for tests and benches
    plain: dict[str, bool] = field(default_factory=dict)  # value -> a plain string token?
    #: (template text, cell name) -> (the Cell object, the shape of its used values)
    cell_shapes: dict[tuple[str, str], tuple[Cell, tuple[str, ...]]] = field(
        default_factory=dict)

    def is_plain(self, value: object) -> bool:
        """Whether ``value`` renders as one plain YAML token that reads back as a string
        (so swapping it for another such token changes no structure and no type)."""
        if not isinstance(value, str):
            return False
        known = self.plain.get(value)
        if known is None:
            known = bool(_PLAIN.match(value)) and _RESOLVER.resolve(
                yaml.ScalarNode, value, (True, False)) == _STR
            if len(self.plain) > 200_000:
                self.plain.clear()
            self.plain[value] = known
        return known

    def keep_only(self, keys: set[RenderKey]) -> None:
        keep = keys | self.previous
        for k in [k for k in self.entries if k not in keep]:
            del self.entries[k]
        self.previous = keys


def declared_outputs(desired: DesiredState, stack: str | None) -> tuple[str, ...]:
    """The output names the stack's ``.tf`` files declare (empty without a stack)."""
    if stack is None:
        return ()
    names: set[str] = set()
    for rel, text in desired.files_under(stack).items():
        if rel.endswith(".tf"):
            names.update(_OUTPUT.findall(text))
    return tuple(sorted(names))


def _used_names(text: str) -> tuple[str, ...]:
    return tuple(sorted({m.group(1) for m in PLACEHOLDER.finditer(text)}))


class _Renderer:
    def __init__(self, cache: RenderCache) -> None:
        self.cache = cache
        self.used: set[RenderKey] = set()
        self.names: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.failures: dict[Problem, list[str]] = {}
        self.cell_shapes: dict[tuple[str, str], tuple[Cell, tuple[str, ...]]] = {}
        self.svc_shapes: dict[tuple[str, str, str, int], tuple[str, ...]] = {}
        self.cell_values: dict[str, tuple[Cell, dict[str, object]]] = {}

    def _shape(self, names: tuple[str, ...], values: list[object]) -> tuple[str, ...]:
        out = []
        for n, v in zip(names, values, strict=True):
            # a plain string token matters only through its equalities with the others
            out.append(f"{n}=plain#{values.index(v)}" if self.cache.is_plain(v)
                       else f"{n}={v!r}")
        return tuple(out)

    def render(self, path: str, text: str, cell: Cell, service: str, version: str,
               outputs: Mapping[str, Any]) -> None:
        split = self.names.get(text)
        if split is None:
            names = _used_names(text)
            split = self.names[text] = (
                tuple(n for n in names if not _is_service_name(n)),
                tuple(n for n in names if _is_service_name(n)))
        cell_names, svc_names = split
        memo_key = (text, cell.name)
        memo = self.cache.cell_shapes.get(memo_key)
        if memo is None or memo[0] is not cell:  # the same Cell object: the same values
            known = self.cell_values.get(cell.name)
            if known is None or known[0] is not cell:  # once per cell, for all templates
                known = self.cell_values[cell.name] = (cell, _cell_values(cell))
            values = known[1]
            memo = (cell, self._shape(cell_names, [values.get(n, _MISSING)
                                                  for n in cell_names]))
        self.cell_shapes[memo_key] = memo
        svc_key = (text, service, version, id(outputs))
        svc_shape = self.svc_shapes.get(svc_key)
        if svc_shape is None:
            svc_shape = self.svc_shapes[svc_key] = self._shape(
                svc_names, [_service_value(n, service, version, outputs) for n in svc_names])
        key: RenderKey = (path, text, memo[1] + svc_shape)
        self.used.add(key)
        problems = self.cache.entries.get(key)
        if problems is None:
            self.cache.renders += 1
            ctx = RenderContext(version, cell, service, outputs, cell.terraform_vars)
            try:
                rendered = render_text(path, text, ctx.values())
                objects = parse_objects(path, rendered)
                problems = tuple(check_objects(path, text, rendered, objects, _UNKNOWN))
            except RenderError as e:
                problems = e.problems
            self.cache.entries[key] = problems
        for p in problems:
            self.failures.setdefault(p, []).append(cell.name)

    def problems(self) -> list[Problem]:
        out = []
        for p, cells in self.failures.items():
            more = f" and {len(cells) - 1} more" if len(cells) > 1 else ""
            out.append(Problem(p.path, p.line, p.col,
                               f"{p.message} (rendering for cell {cells[0]}{more})"))
        return out


def _cells_running(desired: DesiredState, cells: list[Cell],
                   service: str) -> Iterable[tuple[Cell, str]]:
    release = desired.releases.get(service)
    if release is None:
        return
    by_group: dict[str, str | None] = {}
    for cell in cells:
        if cell.group not in by_group:
            v = release.version_for(cell.group)
            by_group[cell.group] = None if v is None else str(v)
        version = by_group[cell.group]
        if version is not None:
            yield cell, version


def _is_service_name(name: str) -> bool:
    return name in ("version", "service.name") or name.startswith("terraform.")


def _service_value(name: str, service: str, version: str,
                   outputs: Mapping[str, Any]) -> object:
    """What a service-part name resolves to (as ``RenderContext.values()`` would say)."""
    if name == "version":
        return version
    if name == "service.name":
        return service
    return outputs.get(name[len("terraform."):], _MISSING)


def _cell_values(cell: Cell) -> dict[str, object]:
    c = cell
    out: dict[str, object] = {
        "cell.name": c.name, "cell.group": c.group, "cell.region": c.region,
        "cell.zone": c.zone, "cell.namespace": c.kubernetes.namespace}
    out.update({f"vars.{k}": v for k, v in c.terraform_vars.items()})
    return out


def check_templates(desired: DesiredState, cache: RenderCache | None = None) -> list[Problem]:
    """Render every manifest and job template for every cell that runs its service;
    every problem, once each, as ``file:line:col: message``."""
    cache = cache if cache is not None else RenderCache()
    r = _Renderer(cache)
    errors: list[Problem] = []
    cells = [desired.cells[n] for n in sorted(desired.cells)]
    no_outputs: dict[str, Any] = {}
    for sname in sorted(desired.services):
        svc = desired.services[sname]
        outputs = dict.fromkeys(declared_outputs(desired, svc.terraform), OUTPUT_PLACEHOLDER)
        templates: list[tuple[str, str]] = []
        for path in svc.manifests:
            try:
                templates += template_files(desired, path)
            except RenderError as e:
                errors += e.problems
        jobs = [(s.job, desired.files[s.job]) for m in desired.migrations_of(sname)
                for s in (m.expand, m.contract, m.rollback)
                if s is not None and s.job and s.job in desired.files]
        if not templates and not jobs:
            continue
        for cell, version in _cells_running(desired, cells, sname):
            for path, text in templates:
                r.render(path, text, cell, sname, version, outputs)
            for path, text in jobs:
                r.render(path, text, cell, sname, version, no_outputs)
    cache.keep_only(r.used)
    cache.cell_shapes = r.cell_shapes
    return errors + r.problems()
