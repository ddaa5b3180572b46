"""Rendered manifests against the Kubernetes API schema, offline. Pure.

Owns: checking each rendered object against the stored schema of its kind
(``reconciler/schemas/kubernetes.json``, trimmed from the local control plane's
``/openapi/v3`` by ``python -m reconciler.localparts.openapi``; its
``kubernetesVersion`` names the version). Strict as a server-side apply is: a field the
schema does not declare is an error (a typo such as ``contianers``), as are a wrong
type and a missing required field; an apiVersion that does not serve the kind
(``extensions/v1beta1`` Deployments) is named with the ones that do. Enum values are left
to the API server: every check here depends on a rendered object's keys and types only,
never on a plain string's value, so ``validate_render`` checks a template once per
shape of the values it uses (10,000 alike cells: once).
Kinds the schema does not hold (custom resources) are not checked. Every problem is
``file:line:col`` in the template: the line of the offending key or value, found by
re-reading the rendered text with positions only when there is an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.core.schema import error_message, error_position
from reconciler.core.yamldoc import Problem, YamlProblem, parse_all, position

RESOURCE = "kubernetes.json"


@cache
def stored() -> dict[str, Any]:
    """The stored schema: ``kubernetesVersion``, ``kinds`` (``apiVersion/Kind`` → its
    definition), ``served`` (kind → apiVersions) and ``$defs``."""
    text = resources.files("reconciler.schemas").joinpath(RESOURCE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def version() -> str:
    return str(stored()["kubernetesVersion"])


def _strict(node: Any) -> Any:
    """Objects with declared properties accept no other field (unless the schema keeps
    unknown fields): what a server-side apply refuses as "field not declared". Enums are
    dropped (see the module's docstring)."""
    if isinstance(node, list):
        return [_strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items() if k != "enum"}
    if "properties" in out and "additionalProperties" not in out and \
            not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@cache
def _defs() -> dict[str, Any]:
    strict: dict[str, Any] = _strict(stored()["$defs"])
    return strict


@cache
def validator(definition: str) -> Draft202012Validator:
    return Draft202012Validator({"$defs": _defs(), "$ref": f"#/$defs/{definition}"})


def _about(err: ValidationError) -> str | None:
    """The key an error is about (an unexpected field, else the last key of its path)."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict) and \
            isinstance(err.schema, dict):
        extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
        if extra:
            return str(extra[0])
    keys = [k for k in err.absolute_path if isinstance(k, str)]
    return keys[-1] if keys else None


def _column(template_line: str, rendered_line: str, col: int, key: str | None,
            on_value: bool) -> int:
    """The column in the template of what sits at ``col`` of the rendered line: the
    same when nothing was substituted on the line, else found by its key (the value
    after it for an error about the value)."""
    if template_line == rendered_line:
        return col
    at = template_line.find(f"{key}:") if key is not None else -1
    if at < 0:
        return len(template_line) - len(template_line.lstrip()) + 1
    if on_value:
        after = at + len(f"{key}:")
        rest = template_line[after:]
        if rest.strip():
            return after + len(rest) - len(rest.lstrip()) + 1
    return at + 1


def _unknown(err: ValidationError, unknown: frozenset[str]) -> bool:
    """An error about a value only known later (a Terraform output's placeholder)."""
    if isinstance(err.instance, str) and err.instance in unknown:
        return True
    return bool(err.context) and all(_unknown(e, unknown) for e in err.context)


#: Shapes known to pass their kind's schema (bounded; oldest out first): the checks
#: depend on keys and types only (see the module's docstring), so 10,000 cells
#: rendering alike objects are checked once, not 10,000 times.
_CLEAN: dict[tuple[str, frozenset[str], Any], None] = {}
MAX_CLEAN = 4096


def _remember_clean(sig: tuple[str, frozenset[str], Any]) -> None:
    _CLEAN[sig] = None
    while len(_CLEAN) > MAX_CLEAN:
        del _CLEAN[next(iter(_CLEAN))]


def shape(value: Any, unknown: frozenset[str] = frozenset(), depth: int = 0) -> Any:
    """What the schema check of ``value`` depends on: keys in order, every value's type,
    list lengths, the ``apiVersion`` and ``kind`` strings (they choose the schema) and
    which strings are placeholders in ``unknown``; never another string's value."""
    t = type(value)
    if t is dict:
        return ("{", tuple((k if type(k) is str else (type(k).__name__, k),
                            value[k] if k in ("apiVersion", "kind") and depth == 0
                            and type(value[k]) is str
                            else shape(value[k], unknown, depth + 1)) for k in value))
    if t is list:
        return ("[", tuple(shape(v, unknown, depth + 1) for v in value))
    if t is str:
        return "$" if value in unknown else "s"
    return t.__name__


def check_objects(path: str, template: str, rendered: str, objects: Sequence[Any],
                  unknown: frozenset[str] = frozenset()) -> list[Problem]:
    """Every schema problem of ``objects`` (the documents of ``rendered``, the text
    ``template`` rendered), positioned in the template. Errors about a value in
    ``unknown`` (placeholders of values known only at apply time) are left out."""
    doc = stored()
    found: list[tuple[int, list[Any], str, str | None, ValidationError | None]] = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            continue
        api, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        name = (obj.get("metadata") or {}).get("name")
        what = f"{kind} {name}"
        definition = doc["kinds"].get(f"{api}/{kind}")
        if definition is None:
            served = doc["served"].get(kind)
            if served and api not in served:
                found.append((i, ["apiVersion"], f"{what}: apiVersion {api} does not serve "
                              f"{kind} in Kubernetes {version()} (served: "
                              f"{', '.join(served)})", "apiVersion", None))
            continue
        sig = (definition, unknown, shape(obj, unknown))
        if sig in _CLEAN:
            continue
        errors = [e for e in validator(definition).iter_errors(obj) if not _unknown(e, unknown)]
        found += [(i, list(err.absolute_path), f"{what}: {error_message(err)} (Kubernetes "
                   f"{version()} API schema)", _about(err), err) for err in errors]
        if not errors:
            _remember_clean(sig)
    if not found:
        return []
    return _positioned(path, template, rendered, found)


def _positioned(path: str, template: str, rendered: str,
                found: list[tuple[int, list[Any], str, str | None, ValidationError | None]]
                ) -> list[Problem]:
    try:
        docs = parse_all(path, rendered)
    except YamlProblem:
        docs = []
    t_lines, r_lines = template.split("\n"), rendered.split("\n")
    out = []
    for i, keys, message, key, err in found:
        line, col = 1, 1
        if i < len(docs):
            if err is not None:
                line, col = error_position(docs[i], err)
            else:
                line, col = position(docs[i], keys)
        on_value = err is None or err.validator not in ("additionalProperties", "required")
        if 0 < line <= len(t_lines) and line <= len(r_lines):
            col = _column(t_lines[line - 1], r_lines[line - 1], col, key, on_value)
        out.append(Problem(path, line, col, message))
    return sorted(set(out), key=lambda p: (p.line, p.col, p.message))
