"""Status documents as YAML text, merged into what a file already says. Pure.

Owns: rendering a status document so that hand-written comments and the order of kept
keys in the existing text survive (ruamel.yaml round-trip); an unreadable old text is
replaced. Both status writers (Git branch and state directory) render through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from reconciler.core.yamldoc import YamlProblem, checked_text


def _yaml() -> YAML:
    y = YAML()
    y.default_flow_style = False
    y.width = 4096
    return y


def _merge(old: Any, new: Any) -> Any:
    """``new``'s values in ``old``'s containers (comments and order of kept keys stay)."""
    if isinstance(old, CommentedMap) and isinstance(new, Mapping):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            old[key] = _merge(old[key], value) if key in old else _plain(value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, list):
        merged = [_merge(old[i], v) if i < len(old) else _plain(v) for i, v in enumerate(new)]
        del old[len(new):]
        for i, v in enumerate(merged):
            if i < len(old):
                old[i] = v
            else:
                old.append(v)
        return old
    return _plain(new)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _plain(v)
        return m
    if isinstance(value, list | tuple):
        return CommentedSeq(_plain(v) for v in value)
    return value


def render(existing: bytes | None, doc: Mapping[str, Any]) -> bytes:
    """The file's new text: ``doc`` merged into ``existing`` (or fresh when unreadable)."""
    y = _yaml()
    old: Any = None
    if existing:
        try:  # the old text comes from the branch: limits first
            old = y.load(checked_text("status", existing))
        except (YAMLError, YamlProblem):
            old = None
    merged = _merge(old, doc) if isinstance(old, CommentedMap) else _plain(doc)
    out = StringIO()
    y.dump(merged, out)
    return out.getvalue().encode()
