"""Reading a live snapshot file (``--live FILE``, ``-`` for standard input).

Owns: the checks before the planner sees a snapshot — valid JSON no deeper than
``MAX_DEPTH``, valid against ``schemas/live.schema.json`` with formats checked (so
``"at": "soon"`` is an error naming the file and the field) — every failure a usage
error naming the file, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.common import UsageError

#: Deeper than any snapshot the schema describes (cells → services → terraform → outputs
#: leaves room for nested output values); a deeper document is refused before use.
MAX_DEPTH = 64


def depth(doc: Any) -> int:
    """How deeply ``doc`` nests lists and objects (iterative: no recursion limit)."""
    deepest, pending = 0, [(doc, 1)]
    while pending:
        value, d = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        pending.extend((c, d + 1) for c in children)
    return deepest


def read_text(path: str) -> str:
    """The text of ``path``, or of standard input for ``-``."""
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--live {path}: {getattr(e, 'strerror', None) or e}") from None


def read_live(path: str | None) -> Any:
    """The LiveSnapshot in ``path`` (None: nothing deployed)."""
    from reconciler.core.live import LiveSnapshot, snapshot_from_json
    from reconciler.core.schema import validate_json

    if path is None:
        return LiveSnapshot()
    name = "standard input" if path == "-" else path
    text = read_text(path)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise UsageError(f"--live {name}: nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:
        raise UsageError(f"--live {name}: not JSON: {e}") from None
    if depth(doc) > MAX_DEPTH:
        raise UsageError(f"--live {name}: nested more than {MAX_DEPTH} levels deep")
    problems = validate_json(doc, "live")
    if problems:
        raise UsageError(f"--live {name}: not a valid live snapshot: " + "; ".join(problems[:5]))
    try:
        return snapshot_from_json(doc)
    except (ValueError, KeyError, TypeError) as e:  # the schema should have said so
        raise UsageError(f"--live {name}: not a valid live snapshot: {e}") from None
