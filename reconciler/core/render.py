"""Rendering a service's Kubernetes manifest templates for one cell.

Owns: the template language (``{{ name }}`` placeholders only: ``version``,
``cell.name|group|region|zone|namespace``, ``service.name``, ``terraform.<output>``,
``vars.<name>``), the values it sees, and turning the rendered text into manifest dicts.
An unknown name, a malformed document or a document that is not a Kubernetes object
is an error naming ``file:line:col``. Rendered text is parsed with the one hardened
YAML parser (``yamldoc.parse_documents``: size, depth and alias-expansion limits), so a
template cannot expand into gigabytes or crash the parser. Pure: template texts come
from ``DesiredState.files``; nothing is read or applied here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import flags
from reconciler.core.model import Cell, DesiredState
from reconciler.core.toolrender import in_namespace, static_problems, tool_request, tool_source
from reconciler.core.yamldoc import Problem, YamlProblem, parse_documents

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


class RenderError(ValueError):
    """One or more templates could not be rendered; ``problems`` lists every problem
    (``errors``: the same as ``file:line:col: message`` texts)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        self.errors = tuple(str(p) for p in problems)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class RenderContext:
    """What a template may refer to, for one service in one cell at one version."""

    version: str
    cell: Cell
    service: str
    terraform: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """Every placeholder name this context resolves, flattened with dots."""
        c = self.cell
        out: dict[str, Any] = {
            "version": self.version, "service.name": self.service,
            "cell.name": c.name, "cell.group": c.group, "cell.region": c.region,
            "cell.zone": c.zone, "cell.namespace": c.kubernetes.namespace,
        }
        out.update({f"terraform.{k}": v for k, v in self.terraform.items()})
        out.update({f"vars.{k}": v for k, v in self.variables.items()})
        return out


def format_value(value: Any) -> str:
    """A value as YAML text: strings raw, scalars in YAML spelling, others as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def render_text(path: str, text: str, values: Mapping[str, Any]) -> str:
    """Substitute every placeholder; raise RenderError listing every unknown name."""
    errors: list[Problem] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if _NAME.match(name) and name in values:
            return format_value(values[name])
        line, col = _position(text, m.start())
        what = "unknown template name" if _NAME.match(name) else "malformed placeholder"
        errors.append(Problem(path, line, col, f"{what} {name!r}"))
        return ""

    out = PLACEHOLDER.sub(sub, text)
    if errors:
        raise RenderError(errors)
    return out


def _check_object(path: str, index: int, doc: Any, at: tuple[int, int]) -> Problem | None:
    if not isinstance(doc, dict):
        return Problem(path, *at, f"document {index + 1} is not a mapping")
    meta = doc.get("metadata")
    if not doc.get("apiVersion") or not doc.get("kind") or not isinstance(meta, dict) \
            or not meta.get("name"):
        return Problem(path, *at, f"document {index + 1} needs apiVersion, kind and "
                                  "metadata.name")
    return None


def parse_objects(path: str, text: str) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendered multi-document YAML text (empty docs skipped)."""
    try:
        docs = parse_documents(path, text)
    except YamlProblem as e:
        raise RenderError([e.problem]) from None
    errors = [err for i, (d, at) in enumerate(docs) if (err := _check_object(path, i, d, at))]
    if errors:
        raise RenderError(errors)
    return [d for d, _ in docs]


def render_template(path: str, text: str, ctx: RenderContext) -> list[dict[str, Any]]:
    """One template file rendered for ``ctx`` into objects."""
    return parse_objects(path, render_text(path, text, ctx.values()))


def render_service(desired: DesiredState, ctx: RenderContext) -> list[dict[str, Any]]:
    """Every manifest template of ``ctx.service`` rendered, in template order.

    Every error of every template is collected before RenderError is raised.
    """
    service = desired.services[ctx.service]
    if service.flag is not None:  # a flag's cell gets its flagd definition
        variant = flags.variant_of(ctx.version) or ""
        return [flags.configmap(desired.flags[service.flag], ctx.cell, variant)]
    if service.tool is not None:
        return render_tool(desired, ctx)
    objects: list[dict[str, Any]] = []
    errors: list[Problem] = []
    for path in service.manifests:
        try:
            files = template_files(desired, path)
        except RenderError as e:
            errors.extend(e.problems)
            continue
        for p, text in files:
            try:
                objects.extend(render_template(p, text, ctx))
            except RenderError as e:
                errors.extend(e.problems)
    if errors:
        raise RenderError(errors)
    return objects


def render_tool(desired: DesiredState, ctx: RenderContext) -> list[dict[str, Any]]:
    """A Helm chart's or Kustomize directory's objects for ``ctx``, rendered by the tool
    plugged into ``desired.tools`` (RenderError when none is, or it fails)."""
    service = desired.services[ctx.service]
    source = tool_source(desired, service)
    refused = static_problems(source)
    if refused:
        raise RenderError(refused)
    if desired.tools is None:
        raise RenderError([Problem(service.source.path, 1, 1,
                                   f"service {service.name} is rendered by {service.tool}, "
                                   "which is not available here")])
    out = desired.tools.render_many([tool_request(source, ctx.version, ctx.values())])[0]
    if isinstance(out, tuple):
        raise RenderError(list(out))
    return in_namespace(parse_objects(f"{source.root} ({source.tool} output)", out),
                        ctx.cell.kubernetes.namespace)


def template_files(desired: DesiredState, path: str) -> list[tuple[str, str]]:
    """The template at ``path``, or every YAML file under it when it is a directory."""
    if path in desired.files:
        return [(path, desired.files[path])]
    under = desired.files_under(path)
    found = [(f"{path.rstrip('/')}/{rel}", t) for rel, t in under.items()
             if rel.endswith((".yaml", ".yml"))]
    if not found:
        raise RenderError([Problem(path, 1, 1,
                                   "manifest template not found in the desired state")])
    return found


def default_context(cell: Cell, service: str, version: str,
                    terraform: Mapping[str, Any] | None = None) -> RenderContext:
    """A context whose ``vars`` are the cell's own variables."""
    return RenderContext(version, cell, service, dict(terraform or {}),
                         dict(cell.terraform_vars))
