"""The kill switch's edit of a flag file: cell groups set to the flag's default variant.

Owns: rewriting ``flags/<name>.yaml`` so that every group (or the given ones) serves the
default variant — entries split where only some of their groups go off, comments and
quoting kept — and saying which groups changed. Pure text in, text out; the file is read
with the loader's YAML limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.core.yamldoc import YamlProblem, checked_text


class FlagEditError(ValueError):
    """The flag file cannot be edited; the message says why."""


@dataclass(frozen=True)
class FlagOff:
    """The edited text, the default variant and the groups that now serve it."""

    text: str
    variant: str
    groups: tuple[str, ...]


def _load(path: str, text: str) -> tuple[YAML, Any]:
    try:
        checked = checked_text(path, text)
    except YamlProblem as e:
        raise FlagEditError(str(e.problem)) from None
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(checked)
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if not isinstance(spec, dict) or doc.get("kind") != "Flag" or \
            not isinstance(spec.get("groups"), list) or \
            not isinstance(spec.get("defaultVariant"), str):
        raise FlagEditError(f"{path}: not a Flag with spec.groups and spec.defaultVariant")
    return yaml, doc


def turn_off(path: str, text: str, groups: Sequence[str] | None = None) -> FlagOff:
    """``text`` with ``groups`` (None: every group the file names) on the default
    variant. A group the file does not name is an error (the flag is not on there)."""
    yaml, doc = _load(path, text)
    spec = doc["spec"]
    off = str(spec["defaultVariant"])
    named = [str(g) for e in spec["groups"] for g in e.get("groups", [])]
    unknown = sorted(set(groups or ()) - set(named))
    if unknown:
        raise FlagEditError(f"{path}: no entry names group(s) {', '.join(unknown)} "
                            f"(groups: {', '.join(named)})")
    wanted = set(named if groups is None else groups)
    changed: list[str] = []
    out = CommentedSeq()
    for entry in spec["groups"]:
        going = [str(g) for g in entry["groups"] if str(g) in wanted and
                 str(entry.get("variant")) != off]
        stay = [g for g in entry["groups"] if str(g) not in going]
        changed += going
        if stay:
            if going:
                entry["groups"] = type(entry["groups"])(stay)
            out.append(entry)
    if changed:
        new = CommentedMap()
        new["groups"] = changed
        new["variant"] = DoubleQuotedScalarString(off)
        out.append(new)
    spec["groups"] = out
    buf = StringIO()
    yaml.dump(doc, buf)
    return FlagOff(buf.getvalue() if changed else text, off, tuple(changed))
