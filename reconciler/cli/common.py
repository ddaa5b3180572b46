"""What every command shares: exit codes, usage errors, output formats, colour, paths.

Owns: writing a document as JSON or YAML, colouring text only for a terminal (``--color``,
``NO_COLOR``), and showing a repository path relative to where the user stands (so an
editor or terminal can open ``example-repo/cells/a.yaml:9:11`` as printed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
#: Output formats of commands that print a document.
FORMATS = ("text", "json", "yaml")


class UsageError(Exception):
    """Bad arguments or unreadable input files (exit 2)."""


def dump(doc: Any, fmt: str) -> str:
    """``doc`` as JSON (indented, keys sorted) or YAML (block style, keys sorted)."""
    if fmt == "yaml":
        return str(yaml.safe_dump(doc, sort_keys=True, allow_unicode=True,
                                  default_flow_style=False, width=100))
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (stdout) is a terminal that understands escape sequences."""
    out = stream if stream is not None else sys.stdout
    try:
        return bool(out.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def color_wanted(choice: str, stream: TextIO | None = None) -> bool:
    """Whether to colour: ``always``, ``never``, or ``auto`` — only on a terminal and
    only when ``NO_COLOR`` is unset or empty (https://no-color.org)."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return is_terminal(stream)


_SGR = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "magenta": "35",
        "bold": "1", "dim": "2", "red-bold": "1;31"}
#: A line's colour by its first non-blank character (plan and diff texts).
_BY_SYMBOL = {"+": "green", "~": "yellow", "-": "red", "!": "red-bold", "‖": "magenta",
              "◷": "cyan", "⚠": "yellow"}


def paint(text: str, colour: str) -> str:
    return f"\x1b[{_SGR[colour]}m{text}\x1b[0m"


def colour_lines(text: str) -> str:
    """Colour each line of a plan or diff text by its leading symbol."""
    out = []
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        colour = _BY_SYMBOL.get(stripped[:1]) if stripped else None
        if stripped.startswith(("+++", "---")):
            colour = "bold"
        elif stripped.startswith("@@"):
            colour = "cyan"
        elif line.startswith(("Plan:", "Diff:", "service ", "wave ")):
            colour = "bold"
        out.append(paint(line, colour) if colour and line else line)
    return "\n".join(out)


def shown_path(repo: str, path: str) -> str:
    """A repository path as the user can open it from the current directory.

    ``repo`` is the REPO argument as typed: ``validate example-repo`` shows
    ``example-repo/cells/a.yaml``; ``validate .`` shows ``cells/a.yaml``; a repository
    outside the current directory keeps the prefix the user typed (absolute or not).
    """
    joined = os.path.normpath(os.path.join(repo, path))
    if os.path.isabs(joined):
        try:
            rel = Path(joined).relative_to(Path.cwd())
        except ValueError:
            return joined
        return rel.as_posix()
    return Path(joined).as_posix()


def shown_problem(repo: str, problem: Any) -> str:
    """A ``Problem`` as ``path:line:col: message`` with the path as ``shown_path``."""
    return f"{shown_path(repo, problem.path)}:{problem.line}:{problem.col}: {problem.message}"


def problem_json(repo: str, problem: Any) -> dict[str, Any]:
    return {"file": shown_path(repo, problem.path), "path": problem.path,
            "line": problem.line, "col": problem.col, "message": problem.message}
