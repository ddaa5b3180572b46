"""Safe YAML parsing with positions: one document per file, positions kept for errors.

Owns: turning bytes into a position-aware tree, and refusing what must never be
loaded: duplicate keys, several documents, alias expansion beyond a budget (YAML alias
bombs), deep nesting, non-UTF-8 text. Pure: works on bytes handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

_FastBase: Any = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)


class _FastLoader(_FastBase):  # type: ignore[misc]
    """libyaml's C parser with a constructor that refuses duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                continue
            if key in seen:
                raise pyyaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f'found duplicate key "{key}"', key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

#: Most nodes a document may expand to (counting every alias use) before it is refused.
NODE_BUDGET = 200_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class Problem:
    """One error at a 1-based line and column of a file."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class YamlProblem(Exception):
    """Parsing failed; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _yaml() -> YAML:
    y = YAML(typ="rt", pure=True)
    y.allow_duplicate_keys = False
    return y


def _mark_problem(path: str, err: MarkedYAMLError) -> Problem:
    mark = err.problem_mark or err.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    text = " ".join(x for x in (err.context, err.problem) if x) or str(err)
    return Problem(path, line, col, f"YAML error: {' '.join(text.split())}")


def _walk_budget(node: Any, path: str, budget: list[int], depth: int) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlProblem(Problem(path, 1, 1, "document expands to too many nodes "
                                  f"(more than {NODE_BUDGET}); YAML alias bomb?"))
    if depth > MAX_DEPTH:
        raise YamlProblem(Problem(path, 1, 1, f"document nested deeper than {MAX_DEPTH}"))
    children = node.values() if isinstance(node, dict) else node if isinstance(
        node, list) else ()
    for child in children:
        _walk_budget(child, path, budget, depth + 1)


def parse(path: str, data: bytes) -> Any:
    """Parse one YAML document keeping positions; raise YamlProblem on any failure."""
    text = _decode(path, data)
    try:
        docs = list(_yaml().load_all(StringIO(text)))
    except MarkedYAMLError as e:
        raise YamlProblem(_mark_problem(path, e)) from None
    except (YAMLError, RecursionError, ValueError) as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None
    if len(docs) != 1:
        raise YamlProblem(Problem(path, 1, 1, f"expected one YAML document, found {len(docs)}"))
    _walk_budget(docs[0], path, [NODE_BUDGET], 0)
    return docs[0]


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlProblem(Problem(path, 1, 1, f"not UTF-8 text ({e.reason})")) from None


def parse_fast(path: str, data: bytes) -> Any:
    """Parse one YAML document into plain values with libyaml (no positions kept).

    Refuses the same things as ``parse``; positions of later schema errors come from
    re-parsing with ``parse``, which only happens for files that have errors.
    """
    text = _decode(path, data)
    try:
        docs = list(pyyaml.load_all(text, Loader=_FastLoader))
    except pyyaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(x for x in (e.context, e.problem) if x) or str(e)
        raise YamlProblem(Problem(path, line, col, f"YAML error: {' '.join(msg.split())}")) \
            from None
    except (pyyaml.YAMLError, RecursionError, ValueError) as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None
    if len(docs) != 1:
        raise YamlProblem(Problem(path, 1, 1, f"expected one YAML document, found {len(docs)}"))
    _walk_budget(docs[0], path, [NODE_BUDGET], 0)
    return docs[0]


def position(root: Any, keys: list[str | int]) -> tuple[int, int]:
    """1-based (line, col) of the value at ``keys`` below ``root``, as near as known."""
    line, col, node = 1, 1, root
    for key in keys:
        if isinstance(node, CommentedMap) and key in node:
            ln, cl = node.lc.value(key) if _has_value_pos(node, key) else node.lc.key(key)
            line, col, node = ln + 1, cl + 1, node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
            ln, cl = node.lc.item(key)
            line, col, node = ln + 1, cl + 1, node[key]
        else:
            break
    return line, col


def key_position(root: Any, keys: list[str | int]) -> tuple[int, int]:
    """Position of the last key of ``keys`` itself (for errors about a key)."""
    parent = root
    for key in keys[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return position(root, keys[:-1])
    last = keys[-1] if keys else None
    if isinstance(parent, CommentedMap) and last in parent:
        ln, cl = parent.lc.key(last)
        return ln + 1, cl + 1
    return position(root, keys)


def _has_value_pos(node: CommentedMap, key: Any) -> bool:
    try:
        node.lc.value(key)
    except (KeyError, TypeError, IndexError):
        return False
    return True


def plain(node: Any) -> Any:
    """A plain-Python copy (dict/list/str/int/float/bool/None) of a parsed tree."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)
