"""Rendering every Helm chart and Kustomize directory for every cell at load time, as
``validate_render`` does for templates, so `validate` sees what a tick would apply.

Owns: which (service, cell, version) renders a revision asks the plugged-in tool
renderer for (each tool-rendered service in every cell whose group has a release of
it; a Terraform output the stack declares renders as a placeholder), the static
refusals (``toolrender.static_problems``) before any tool runs, and checking every
rendered object as a plain manifest is checked (a Kubernetes object, valid against the
API schema offline). A problem is reported once, with the first cell it fails for.
Checked outcomes are kept by request digest, so a commit that changes one cell's
values checks one cell again. Pure: the tools run behind ``ToolRenderer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.kubeschema import check_objects, version
from reconciler.core.model import DesiredState
from reconciler.core.render import RenderContext, RenderError, parse_objects
from reconciler.core.toolrender import (
    ToolRenderer,
    ToolRequest,
    image_names,
    static_problems,
    tool_request,
    tool_source,
)
from reconciler.core.validate_render import OUTPUT_PLACEHOLDER, declared_outputs
from reconciler.core.yamldoc import Problem

_UNKNOWN = frozenset({OUTPUT_PLACEHOLDER})
#: Names the checks a rendered output passed (bump when ``_checked`` changes).
CHECKS = "objects+kubeschema/1"


@dataclass
class ToolCheckCache:
    """Checked outcomes by request digest; keeps what the last two loads used."""

    entries: dict[str, tuple[Problem, ...]] = field(default_factory=dict)
    previous: set[str] = field(default_factory=set)

    def keep_only(self, keys: set[str]) -> None:
        keep = keys | self.previous
        for k in [k for k in self.entries if k not in keep]:
            del self.entries[k]
        self.previous = keys


def _requests(desired: DesiredState, name: str) -> tuple[list[Problem], list[ToolRequest]]:
    svc = desired.services[name]
    source = tool_source(desired, svc)
    refused = static_problems(source)
    release = desired.releases.get(name)
    if refused or release is None:
        return refused, []
    outputs = dict.fromkeys(declared_outputs(desired, svc.terraform), OUTPUT_PLACEHOLDER)
    images = image_names(source) if source.tool == "kustomize" else ()
    out = []
    for cname in sorted(desired.cells):
        cell = desired.cells[cname]
        version = release.version_for(cell.group)
        if version is None:
            continue
        values = RenderContext(str(version), cell, name, outputs, cell.terraform_vars).values()
        out.append(tool_request(source, str(version), values, images))
    return [], out


def _checked(request: ToolRequest, rendered: str) -> tuple[Problem, ...]:
    path = f"{request.source.root} ({request.source.tool} output)"
    try:
        objects: list[Any] = parse_objects(path, rendered)
    except RenderError as e:
        return e.problems
    return tuple(check_objects(path, rendered, rendered, objects, _UNKNOWN))


def check_tool_services(desired: DesiredState, tools: ToolRenderer | None,
                        cache: ToolCheckCache | None = None) -> list[Problem]:
    """Every problem of every tool-rendered service, once each, as ``file:line:col``."""
    cache = cache if cache is not None else ToolCheckCache()
    errors: list[Problem] = []
    pending: list[ToolRequest] = []
    used: set[str] = set()
    failures: dict[Problem, list[str]] = {}
    by_digest: dict[str, list[ToolRequest]] = {}
    for name in sorted(desired.services):
        svc = desired.services[name]
        if svc.tool is None:
            continue
        refused, requests = _requests(desired, name)
        errors += refused
        if requests and tools is None:
            errors.append(Problem(svc.source.path, 1, 1,
                                  f"service {name} is rendered by {svc.tool}, which is not "
                                  "available here"))
            continue
        for r in requests:
            used.add(r.digest)
            by_digest.setdefault(r.digest, []).append(r)
            if r.digest not in cache.entries and len(by_digest[r.digest]) == 1:
                pending.append(r)
    if pending and tools is not None:
        _render_and_check(tools, pending, cache)
    for digest, requests in by_digest.items():
        for p in cache.entries.get(digest, ()):
            failures.setdefault(p, []).extend(r.cell for r in requests)
    cache.keep_only(used)
    return errors + _with_cells(failures)


def _render_and_check(tools: ToolRenderer, pending: list[ToolRequest],
                      cache: ToolCheckCache) -> None:
    checker = f"{CHECKS}@{version()}"
    known = tools.passed(pending, checker)
    for r, ok in zip(pending, known, strict=True):
        if ok:
            cache.entries[r.digest] = ()
    todo = [r for r, ok in zip(pending, known, strict=True) if not ok]
    clean = []
    for r, out in zip(todo, tools.render_many(todo) if todo else [], strict=True):
        problems = out if isinstance(out, tuple) else _checked(r, out)
        cache.entries[r.digest] = problems
        if not problems:
            clean.append(r)
    if clean:
        tools.mark_passed(clean, checker)


def _with_cells(failures: Mapping[Problem, list[str]]) -> list[Problem]:
    out = []
    for p, cells in failures.items():
        more = f" and {len(cells) - 1} more" if len(cells) > 1 else ""
        out.append(Problem(p.path, p.line, p.col,
                           f"{p.message} (rendering for cell {cells[0]}{more})"))
    return out
