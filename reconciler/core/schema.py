"""JSON Schema validation of desired-state files, the live snapshot and the plan.

Owns: loading the packaged schemas (static data, read once) and turning jsonschema
errors into positioned ``Problem`` values, every one of them, in document order.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from reconciler.core.fastschema import Check, compiled
from reconciler.core.yamldoc import Problem, key_position, position

KINDS = ("Fleet", "Cell", "Service", "Release", "Migration")

#: RFC 3339 ``date-time`` (jsonschema checks the format only when an optional package is
#: installed; ours does not depend on one): date, ``T``, time, fraction, zone.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """An RFC 3339 date-time with a zone that names a real instant."""
    if not isinstance(value, str):
        return True  # formats constrain strings only
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # a real date and time
    return True


@cache
def schema(name: str) -> dict[str, Any]:
    """The packaged schema ``<name>.schema.json`` (fleet, cell, ..., live, plan)."""
    text = resources.files("reconciler.schemas").joinpath(f"{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def fast(name: str) -> Check | None:
    """Schema ``name`` compiled for a quick "valid?" (None: jsonschema alone decides)."""
    return compiled(schema(name), FORMATS)


@cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for schema ``name``."""
    return Draft202012Validator(schema(name), format_checker=FORMATS)


def _message(err: ValidationError) -> str:
    where = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        return f"{where + ': ' if where else ''}{err.message}"
    desc = err.schema.get("description") if isinstance(err.schema, dict) else None
    if err.validator == "pattern" and desc:
        return f"{where}: {err.instance!r} is not {desc}"
    if err.validator == "oneOf" and desc and not err.context:  # valid under several
        return f"{where or 'document'}: {desc}"
    if err.validator in ("oneOf", "anyOf") and err.context:
        best = min(err.context, key=lambda e: len(e.message))
        return f"{where or 'document'}: {best.message}"
    return f"{where or 'document'}: {err.message}"


def _locate(doc: Any, err: ValidationError) -> tuple[int, int]:
    keys = list(err.absolute_path)
    if err.validator == "required" and keys:
        return key_position(doc, keys)
    sch = err.schema
    if err.validator == "additionalProperties" and isinstance(err.instance, dict) and \
            isinstance(sch, dict):
        extra = [k for k in err.instance if k not in sch.get("properties", {})]
        if extra:
            return key_position(doc, [*keys, extra[0]])
    return position(doc, keys)


def error_message(err: ValidationError) -> str:
    """``path.to.field: what is wrong`` for one schema violation."""
    return _message(err)


def error_position(doc: Any, err: ValidationError) -> tuple[int, int]:
    """1-based (line, col) in a positioned YAML tree of the key or value ``err`` is about."""
    return _locate(doc, err)


def validate_document(path: str, doc: Any, name: str) -> list[Problem]:
    """Every schema violation of ``doc`` (a parsed YAML tree) as positioned problems."""
    quick = fast(name)
    if quick is not None and quick(doc):
        return []
    errors = sorted(validator(name).iter_errors(doc), key=lambda e: list(map(str, e.path)))
    problems = [Problem(path, *_locate(doc, e), _message(e)) for e in errors]
    return sorted(problems, key=lambda p: (p.line, p.col, p.message))


def validate_json(doc: Any, name: str) -> list[str]:
    """Schema violations of a plain JSON value, as ``path: message`` strings."""
    quick = fast(name)
    if quick is not None and quick(doc):
        return []
    return [_message(e) for e in validator(name).iter_errors(doc)]
