"""A fast "is this valid?" for the packaged schemas: the schema compiled into closures.

Owns: deciding quickly that a document is valid, so ``schema.validate_document`` runs
jsonschema (every error, with positions) only for documents that are not — at 10,000
cells the cold load spent ~40% of its time in jsonschema on documents that were fine.
Only the keywords the packaged schemas use are compiled (``type``, ``properties``,
``additionalProperties``, ``required``, ``items``, ``const``, ``enum``, ``pattern``,
``min/maxLength``, ``minItems``, ``minProperties``, ``propertyNames``, ``minimum``,
``maximum``, ``exclusiveMinimum``, ``oneOf``, ``not``, ``if/then/else``, ``format``), with
jsonschema's semantics (``re.search`` patterns, integral floats are integers, booleans
are neither numbers nor equal to 1/0, the same format checker); a schema with any other
keyword is not compiled (None: jsonschema decides alone). A document it accepts is one
jsonschema accepts: tests/core/test_fastschema.py checks the two agree. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import FormatChecker

Check = Callable[[Any], bool]

#: Keywords that only annotate.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default",
                          "examples", "deprecated", "readOnly", "writeOnly"})
_SUPPORTED = frozenset({"type", "properties", "additionalProperties", "required", "items",
                        "const", "enum", "pattern", "minLength", "maxLength", "minItems",
                        "maxItems", "minProperties", "propertyNames", "minimum", "maximum",
                        "exclusiveMinimum", "exclusiveMaximum", "oneOf", "anyOf", "allOf",
                        "not", "if", "then", "else", "format"}) | _ANNOTATIONS


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not know."""


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    raise Unsupported(f"type {name!r}")


def equal(a: Any, b: Any) -> bool:
    """jsonschema's equality: booleans equal only booleans; containers element-wise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    same: bool = a == b
    return same


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compile_schema(schema: Any, formats: FormatChecker) -> Check:
    """The schema as one function: True exactly when the value is valid (raises
    Unsupported for a keyword outside the compiled set)."""
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, Mapping):
        raise Unsupported(f"schema {schema!r}")
    unknown = set(schema) - _SUPPORTED
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    checks: list[Check] = []
    _types(schema, checks)
    _values(schema, checks, formats)
    _objects(schema, checks, formats)
    _arrays(schema, checks, formats)
    _combined(schema, checks, formats)
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    return _every(tuple(checks))


def _every(checks: tuple[Check, ...]) -> Check:
    """True when every check is, tried in order (a loop: no generator per value)."""
    def check(v: Any) -> bool:
        for c in checks:  # noqa: SIM110 — all() would build a generator per value
            if not c(v):
                return False
        return True

    return check


def _types(schema: Mapping[str, Any], checks: list[Check]) -> None:
    if "type" not in schema:
        return
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    for n in names:
        _is_type(None, n)  # an unknown type name is Unsupported now, not at use
    if len(names) == 1:
        checks.append(_ONE_TYPE.get(names[0]) or (lambda v: _is_type(v, names[0])))
    else:
        checks.append(lambda v: any(_is_type(v, n) for n in names))


#: ``_is_type(v, name)`` for the names a value's class alone decides.
_ONE_TYPE: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _values(schema: Mapping[str, Any], checks: list[Check], formats: FormatChecker) -> None:
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: equal(v, const))
    if "enum" in schema:
        options = list(schema["enum"])
        checks.append(lambda v: any(equal(v, o) for o in options))
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        checks.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
    if "minLength" in schema:
        n1 = schema["minLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) >= n1)
    if "maxLength" in schema:
        n2 = schema["maxLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) <= n2)
    if "format" in schema:
        fmt = schema["format"]
        checks.append(lambda v: formats.conforms(v, fmt))
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            checks.append(_bound(key, schema[key]))


def _bound(key: str, bound: Any) -> Check:
    compare: Callable[[Any], bool] = {
        "minimum": lambda v: bool(v >= bound), "maximum": lambda v: bool(v <= bound),
        "exclusiveMinimum": lambda v: bool(v > bound),
        "exclusiveMaximum": lambda v: bool(v < bound)}[key]
    return lambda v: not _number(v) or compare(v)


def _objects(schema: Mapping[str, Any], checks: list[Check], formats: FormatChecker) -> None:
    props = {k: compile_schema(s, formats) for k, s in (schema.get("properties") or {}).items()}
    extra = schema.get("additionalProperties")
    extra_check = compile_schema(extra, formats) if extra is not None else None
    required = tuple(schema.get("required") or ())
    min_props = schema.get("minProperties")
    names = compile_schema(schema["propertyNames"], formats) \
        if "propertyNames" in schema else None
    if not (props or extra_check or required or min_props is not None or names):
        return

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for r in required:
            if r not in v:
                return False
        if min_props is not None and len(v) < min_props:
            return False
        for k, item in v.items():
            c = props.get(k)
            if c is not None:
                if not c(item):
                    return False
            elif extra_check is not None and not extra_check(item):
                return False
            if names is not None and not names(k):
                return False
        return True

    checks.append(check)


def _arrays(schema: Mapping[str, Any], checks: list[Check], formats: FormatChecker) -> None:
    items = compile_schema(schema["items"], formats) if "items" in schema else None
    low, high = schema.get("minItems"), schema.get("maxItems")
    if items is None and low is None and high is None:
        return

    def check(v: Any) -> bool:
        if not isinstance(v, list):
            return True
        if (low is not None and len(v) < low) or (high is not None and len(v) > high):
            return False
        return items is None or all(items(x) for x in v)

    checks.append(check)


def _combined(schema: Mapping[str, Any], checks: list[Check], formats: FormatChecker) -> None:
    if "oneOf" in schema:
        one = [compile_schema(s, formats) for s in schema["oneOf"]]
        checks.append(lambda v: sum(1 for c in one if c(v)) == 1)
    if "anyOf" in schema:
        some = [compile_schema(s, formats) for s in schema["anyOf"]]
        checks.append(lambda v: any(c(v) for c in some))
    if "allOf" in schema:
        every = [compile_schema(s, formats) for s in schema["allOf"]]
        checks.append(lambda v: all(c(v) for c in every))
    if "not" in schema:
        neg = compile_schema(schema["not"], formats)
        checks.append(lambda v: not neg(v))
    if "if" in schema:
        cond = compile_schema(schema["if"], formats)
        then = compile_schema(schema.get("then", True), formats)
        other = compile_schema(schema.get("else", True), formats)
        checks.append(lambda v: then(v) if cond(v) else other(v))


def compiled(schema: Any, formats: FormatChecker) -> Check | None:
    """``compile_schema``, or None when the schema uses a keyword it does not know."""
    try:
        return compile_schema(schema, formats)
    except Unsupported:
        return None
