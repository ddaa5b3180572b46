"""Rendering every template for every cell at load time, so `validate` sees what a tick
would render.

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

from reconciler.core.model import Cell, DesiredState
from reconciler.core.render import (
    PLACEHOLDER,
    RenderContext,
    RenderError,
    render_template,
    template_files,
)
from reconciler.core.yamldoc import Problem

_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$")
_STR = "tag:yaml.org,2002:str"
_RESOLVER: Any = yaml.resolver.Resolver()

_OUTPUT = re.compile(r'^\s*output\s+"([A-Za-z_][A-Za-z0-9_-]*)"', re.M)
#: What a declared Terraform output renders as when checking (its value comes later).
OUTPUT_PLACEHOLDER = "terraform-output"
_MISSING = object()

RenderKey = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass
class RenderCache:
    """Outcomes by (path, text, used values); keeps what the last two loads used."""

    entries: dict[RenderKey, tuple[Problem, ...]] = field(default_factory=dict)
    previous: set[RenderKey] = field(default_factory=set)
    renders: int = 0  # templates actually rendered (cache misses), for tests and benches
    plain: dict[str, bool] = field(default_factory=dict)  # value -> a plain string token?

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
        self.names: dict[str, tuple[str, ...]] = {}
        self.failures: dict[Problem, list[str]] = {}

    def render(self, path: str, text: str, ctx: RenderContext,
               cell_values: Mapping[str, object]) -> None:
        names = self.names.get(text)
        if names is None:
            names = self.names[text] = _used_names(text)
        shape: list[tuple[str, str]] = []
        used: list[object] = []
        for n in names:
            v = _lookup(n, ctx, cell_values)
            used.append(v)
            if self.cache.is_plain(v):  # only its equalities with other used values matter
                shape.append((n, f"plain#{used.index(v)}"))
            else:
                shape.append((n, repr(v)))
        key: RenderKey = (path, text, tuple(shape))
        self.used.add(key)
        problems = self.cache.entries.get(key)
        if problems is None:
            self.cache.renders += 1
            try:
                render_template(path, text, ctx)
                problems = ()
            except RenderError as e:
                problems = e.problems
            self.cache.entries[key] = problems
        for p in problems:
            self.failures.setdefault(p, []).append(ctx.cell.name)

    def problems(self) -> list[Problem]:
        out = []
        for p, cells in self.failures.items():
            more = f" and {len(cells) - 1} more" if len(cells) > 1 else ""
            out.append(Problem(p.path, p.line, p.col,
                               f"{p.message} (rendering for cell {cells[0]}{more})"))
        return out


def _cells_running(desired: DesiredState, service: str) -> Iterable[tuple[Cell, str]]:
    for name in sorted(desired.cells):
        cell = desired.cells[name]
        version = desired.desired_version(service, cell)
        if version is not None:
            yield cell, str(version)


def _lookup(name: str, ctx: RenderContext, cell_values: Mapping[str, object]) -> object:
    """What ``name`` resolves to in ``ctx`` (as ``ctx.values()`` would say), cheaply."""
    if name == "version":
        return ctx.version
    if name == "service.name":
        return ctx.service
    if name.startswith("terraform."):
        return ctx.terraform.get(name[len("terraform."):], _MISSING)
    return cell_values.get(name, _MISSING)


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
    cell_values: dict[str, dict[str, object]] = {}
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
        for cell, version in _cells_running(desired, sname):
            values = cell_values.get(cell.name)
            if values is None:
                values = cell_values[cell.name] = _cell_values(cell)
            variables = cell.terraform_vars
            ctx = RenderContext(version, cell, sname, outputs, variables)
            for path, text in templates:
                r.render(path, text, ctx, values)
            if jobs:
                job_ctx = RenderContext(version, cell, sname, {}, variables)
                for path, text in jobs:
                    r.render(path, text, job_ctx, values)
    cache.keep_only(r.used)
    return errors + r.problems()
