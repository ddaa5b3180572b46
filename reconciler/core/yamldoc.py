"""Safe YAML parsing with positions: one document per file, positions kept for errors.

Owns: turning bytes into a position-aware tree, and refusing what must never be
loaded: duplicate keys, several documents, alias expansion beyond a budget (YAML alias
bombs), deep nesting, documents over a size limit, non-UTF-8 text. The one YAML parser
for what the repository holds: model files (``parse`` / ``parse_fast``) and rendered
manifests (``parse_documents``). Pure: works on bytes handed in.

The limits are enforced before anything is expanded: nesting is measured on libyaml's
event stream (never by recursion, which crashes libyaml's composer on ``[[[[...``),
and the alias budget on the composed node graph, where an alias is a shared reference,
so a 461-byte "billion laughs" is refused in microseconds with a bounded footprint.
"""

from __future__ import annotations

import re
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

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The tag of a node, as the safe resolver says: a short scalar's from a memo.

        libyaml's composer calls back here for every scalar; the resolver's answer for
        a scalar depends only on its text and whether it was plain/quoted (no path
        resolvers are registered: checked), so the same answer is kept for texts up to
        _MEMO_TEXT characters, in a memo emptied when it grows past _MEMO_ENTRIES.
        """
        if kind is not _SCALAR or len(value) > _MEMO_TEXT or self.yaml_path_resolvers:
            return _resolve(self, kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = _resolve(self, kind, value, implicit)
            if len(_RESOLVED) >= _MEMO_ENTRIES:
                _RESOLVED.clear()
            _RESOLVED[key] = tag
        return tag

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:  # merged keys may be overridden: not duplicates
                continue
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
#: Deepest nesting of collections a document may have.
MAX_DEPTH = 64
#: Largest YAML text (in bytes) parsed at all.
MAX_DOC_BYTES = 1 << 20

_SCALAR = pyyaml.ScalarNode
_SEQUENCE = pyyaml.SequenceNode
_MAPPING = pyyaml.MappingNode
_resolve = _FastBase.resolve
#: Scalar texts up to this length have their resolved tag remembered (see resolve).
_MEMO_TEXT = 64
_MEMO_ENTRIES = 50_000
_RESOLVED: dict[tuple[str, Any], str] = {}

_INDENT = re.compile(r"^ *", re.M)
_COMPACT = re.compile(r"^ *(?:[-?:][ \t]+)+", re.M)
_START = (pyyaml.SequenceStartEvent, pyyaml.MappingStartEvent)
_END = (pyyaml.SequenceEndEvent, pyyaml.MappingEndEvent)


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


def _at(mark: Any) -> tuple[int, int]:
    """1-based (line, col) of a libyaml mark (1, 1 when there is none)."""
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _depth_bound(text: str) -> int:
    """A cheap upper bound of the collection nesting depth of ``text``.

    Open block collections have strictly growing start columns (two may share one: a
    sequence as a mapping's value), so at a line there are at most 2 * (indent + 1)
    from earlier lines plus one per compact indicator (``- - x``) and one more on it;
    every flow collection needs its own ``[`` or ``{``.
    """
    indent = max((len(m) for m in _INDENT.findall(text)), default=0)
    compact = max((sum(m.count(c) for c in "-?:") for m in _COMPACT.findall(text)),
                  default=0)
    return 2 * (indent + 1) + compact + 1 + text.count("[") + text.count("{")


def _check_depth(path: str, text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, measured on the event stream (no recursion)."""
    if _depth_bound(text) <= MAX_DEPTH:
        return
    loader = _FastBase(text)
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, _START):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlProblem(Problem(path, *_at(event.start_mark),
                                              f"document nested deeper than {MAX_DEPTH}"))
            elif isinstance(event, _END):
                depth -= 1
    except pyyaml.MarkedYAMLError as e:
        raise YamlProblem(_pyyaml_problem(path, e)) from None
    except pyyaml.YAMLError as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None
    finally:
        loader.dispose()


def _expanded_size(node: Any, sizes: dict[int, int], path: str, budget: int) -> int:
    """Nodes ``node`` stands for once every alias is expanded; refused over ``budget``.

    Aliases are shared node objects here, so memoising by identity keeps this linear in
    the text; recursion is bounded by MAX_DEPTH (checked first).
    """
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, pyyaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, sizes, path, budget)
    elif isinstance(node, pyyaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, sizes, path, budget)
            size += _expanded_size(value, sizes, path, budget)
    if size > budget:
        raise YamlProblem(Problem(path, *_at(node.start_mark),
                                  f"document expands to too many nodes (more than "
                                  f"{NODE_BUDGET} with its aliases); YAML alias bomb?"))
    sizes[id(node)] = size
    return size


def _pyyaml_problem(path: str, e: pyyaml.MarkedYAMLError) -> Problem:
    mark = e.problem_mark or e.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    msg = " ".join(x for x in (e.context, e.problem) if x) or str(e)
    return Problem(path, line, col, f"YAML error: {' '.join(msg.split())}")


def _check_limits(path: str, text: str) -> None:
    """Depth and alias expansion of every document, without constructing anything.

    A syntax error is left for the caller's own parser to report in its words.
    """
    _check_depth(path, text)
    if "*" not in text:
        return
    loader = _FastLoader(text)
    budget = NODE_BUDGET
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                budget -= _expanded_size(node, {}, path, budget)
    except pyyaml.YAMLError:
        return
    finally:
        loader.dispose()


_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct(loader: Any, node: Any, memo: dict[int, Any]) -> Any:
    """The plain value of a composed node, as the safe constructor builds it: strings,
    lists and mappings directly (three quarters of a cold load's construction time went
    to the generic constructor's bookkeeping), every other tag — numbers, booleans,
    null, timestamps, merge keys, sets, binary — by the constructor itself. Duplicate
    keys are refused with the constructor's message."""
    tag = node.tag
    if tag == _STR_TAG and isinstance(node, _SCALAR):  # the same value however reached
        return node.value
    known = memo.get(id(node), memo)
    if known is not memo:
        return known
    if tag == _SEQ_TAG and isinstance(node, _SEQUENCE):
        items: list[Any] = []
        memo[id(node)] = items
        for item in node.value:
            items.append(_construct(loader, item, memo))
        return items
    if tag == _MAP_TAG and isinstance(node, _MAPPING):
        pairs = node.value
        for key_node, _ in pairs:
            if key_node.tag == _MERGE_TAG:  # merge keys: the constructor's own way
                break
        else:
            mapping: dict[Any, Any] = {}
            memo[id(node)] = mapping
            for key_node, value_node in pairs:
                key = _construct(loader, key_node, memo)
                if isinstance(key, list | dict):  # unhashable: the constructor says so
                    return loader.construct_object(node, deep=True)
                if key in mapping:
                    raise pyyaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f'found duplicate key "{key}"', key_node.start_mark)
                mapping[key] = _construct(loader, value_node, memo)
            return mapping
    value = loader.construct_object(node, deep=True)
    memo[id(node)] = value
    return value


def _construct_document(loader: Any, node: Any) -> Any:
    try:
        return _construct(loader, node, {})
    finally:
        loader.constructed_objects = {}
        loader.recursive_objects = {}


def _load_checked(path: str, text: str) -> list[tuple[Any, tuple[int, int]]]:
    """Every document of ``text`` as plain values with its start (line, col), each
    checked for depth and alias expansion before it is constructed."""
    _check_depth(path, text)
    loader = _FastLoader(text)
    docs: list[tuple[Any, tuple[int, int]]] = []
    budget = NODE_BUDGET
    aliases = "*" in text  # without an alias indicator nothing expands beyond the text
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if aliases:
                budget -= _expanded_size(node, {}, path, budget)
            start = _at(node.start_mark)
            docs.append((_construct_document(loader, node), start))
    except pyyaml.MarkedYAMLError as e:
        raise YamlProblem(_pyyaml_problem(path, e)) from None
    except (pyyaml.YAMLError, RecursionError, ValueError) as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None
    finally:
        loader.dispose()
    return docs


def checked_text(path: str, data: bytes | str) -> str:
    """``data`` as text once its size, nesting and alias expansion are within the limits
    (YamlProblem otherwise): for callers that parse with their own (round-trip) loader —
    status, progress and release files read back from the branch anyone may push to."""
    text = _decode(path, data)
    _check_limits(path, text)
    return text


def parse(path: str, data: bytes) -> Any:
    """Parse one YAML document keeping positions; raise YamlProblem on any failure."""
    text = _decode(path, data)
    _check_limits(path, text)  # first: the positioned parser expands nothing unchecked
    try:
        docs = list(_yaml().load_all(StringIO(text)))
    except MarkedYAMLError as e:
        raise YamlProblem(_mark_problem(path, e)) from None
    except (YAMLError, RecursionError, ValueError) as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None
    if len(docs) != 1:
        raise YamlProblem(Problem(path, 1, 1, f"expected one YAML document, found {len(docs)}"))
    return docs[0]


def parse_all(path: str, data: bytes | str) -> list[Any]:
    """Every non-empty document of ``data`` keeping positions (for errors found in
    rendered manifests), after the same limits as ``parse``; raises YamlProblem."""
    text = _decode(path, data)
    _check_limits(path, text)
    try:
        return [d for d in _yaml().load_all(StringIO(text)) if d is not None]
    except MarkedYAMLError as e:
        raise YamlProblem(_mark_problem(path, e)) from None
    except (YAMLError, RecursionError, ValueError) as e:
        raise YamlProblem(Problem(path, 1, 1, f"YAML error: {e}")) from None


def _decode(path: str, data: bytes | str) -> str:
    if len(data) > MAX_DOC_BYTES:
        raise YamlProblem(Problem(path, 1, 1, f"YAML text is {len(data)} bytes, over the "
                                              f"limit of {MAX_DOC_BYTES}"))
    if isinstance(data, str):
        return data
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
    docs = _load_checked(path, text)
    if len(docs) != 1:
        raise YamlProblem(Problem(path, 1, 1, f"expected one YAML document, found {len(docs)}"))
    return docs[0][0]


def parse_documents(path: str, data: bytes | str) -> list[tuple[Any, tuple[int, int]]]:
    """Every document of a multi-document YAML text (rendered manifests) as plain values
    with the 1-based (line, col) where it starts; empty documents are left out.

    The same limits as ``parse``: size, nesting depth and alias expansion (the budget is
    shared by all documents of the text); raises YamlProblem.
    """
    return [(doc, at) for doc, at in _load_checked(path, _decode(path, data))
            if doc is not None]


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
