"""The parse cache on disk: what a one-shot command (`validate`, `plan`) parsed last time.

Owns: one file per repository directory under the operator's cache directory, holding
the parsed YAML value of every model file the last load read, keyed by a hash of the
file's path and bytes; handing those back instead of parsing again, and writing the
file back (atomically, only what this load read) when something changed. A 10,000-cell
repository then costs its YAML parse once, not on every `validate`.

Trust: the file is the operator's (their cache directory, mode 0600); what a pull
request controls is the bytes hashed into a key, never the key itself. Values are
JSON — plain mappings, lists, strings, numbers, booleans and null — so reading the
file back builds nothing else; a value YAML gives that JSON cannot hold exactly (a
date, a non-string key, a non-finite number, bytes, a set) is not kept and that file is
parsed every time. A parse error is never kept either. Every kept value still goes
through the loader's model building, as a fresh parse does, and the quick schema
check's verdict is kept with it (a value it did not pass is checked in full again). The
key includes a digest of the parser's and the checker's source, the schemas and the
YAML library's version, so a new parser or schema starts afresh. Bounded: a file
larger than ``MAX_FILE`` is ignored, at most ``MAX_FILES`` repositories are kept (the
least recently written go).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Generator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reconciler.core import fastschema, schema, yamldoc
from reconciler.core.loader import ParseTexts, TextOutcome

__all__ = ["MAX_FILE", "MAX_FILES", "DiskParseCache", "json_safe"]

MAX_FILE = 256 * 1024 * 1024
MAX_FILES = 32
_FORMAT = "reconciler-parse-cache 1"


def _parser_digest() -> str:
    """What decides a parse's value and its quick schema verdict: the parser's and the
    checker's source, the schemas, and the YAML library."""
    h = hashlib.sha256()
    for module in (yamldoc, fastschema, schema):
        h.update(Path(module.__file__ or "").read_bytes())
    for f in sorted(resources.files("reconciler.schemas").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".json"):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(f"\0{yaml.__version__}\0{getattr(yaml, '__with_libyaml__', False)}".encode())
    return h.hexdigest()[:32]


def json_safe(value: Any, depth: int = 0) -> bool:
    """Whether JSON gives ``value`` back exactly (same types, same order)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 200:
        return False
    if t is list:
        return all(json_safe(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and json_safe(v, depth + 1) for k, v in value.items())
    return False


class DiskParseCache:
    """The parse cache of one repository directory, in ``root``."""

    def __init__(self, root: Path, repository: str) -> None:
        self.root = root
        self.file = root / f"{hashlib.sha256(repository.encode()).hexdigest()[:24]}.txt"
        self.hits = 0
        self.misses = 0
        self._digest = _parser_digest()

    def _key(self, path: str, raw: bytes) -> str:
        h = hashlib.sha256(self._digest.encode())
        h.update(b"\0%d\0" % len(path.encode()))
        h.update(path.encode())
        h.update(raw)
        return h.hexdigest()

    def _read(self) -> dict[str, str]:
        """Key → the JSON text of its value, as last written (empty when unreadable)."""
        try:
            if self.file.stat().st_size > MAX_FILE:
                return {}
            lines = self.file.read_text(encoding="ascii").split("\n")
        except (OSError, UnicodeDecodeError):
            return {}
        if not lines or lines[0] != f"{_FORMAT} {self._digest}":
            return {}
        out: dict[str, str] = {}
        for line in lines[1:]:
            key, _, text = line.partition(" ")
            if len(key) == 64 and text:
                out[key] = text
        return out

    def _write(self, entries: dict[str, str]) -> None:
        """``entries`` written atomically; quietly nothing when the cache cannot be."""
        body = "\n".join([f"{_FORMAT} {self._digest}",
                          *(f"{k} {v}" for k, v in entries.items())])
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".parse-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(body)
                os.replace(tmp, self.file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError:
            pass

    def _prune(self) -> None:
        files = sorted(self.root.glob("*.txt"), key=lambda p: p.stat().st_mtime)
        for old in files[:-MAX_FILES]:
            with contextlib.suppress(OSError):
                old.unlink()

    def wrap(self, inner: ParseTexts) -> ParseTexts:
        """``inner`` for the texts not in the cache, the cache for the rest; same order,
        as lazily as ``inner``. The file is rewritten before the last outcome is given
        when this load's entries differ from the file's."""
        def parse_many(texts: Sequence[tuple[str, bytes]]) -> Generator[TextOutcome, None, None]:
            return self._parse(texts, inner)
        return parse_many

    def _parse(self, texts: Sequence[tuple[str, bytes]],
               inner: ParseTexts) -> Generator[TextOutcome, None, None]:
        known = self._read()
        keys = [self._key(path, raw) for path, raw in texts]
        cached = [_decoded(known.get(k)) for k in keys]
        missing = [t for t, c in zip(texts, cached, strict=True) if c is None]
        fresh = iter(inner(missing)) if missing else iter(())
        kept: dict[str, str] = {}
        last = len(texts) - 1
        for i, (key, found) in enumerate(zip(keys, cached, strict=True)):
            if found is None:
                outcome = next(fresh)
                self.misses += 1
                if outcome[1] is None and json_safe(outcome[0]):
                    kept[key] = json.dumps([outcome[2], outcome[0]], separators=(",", ":"))
            else:
                self.hits += 1
                kept[key] = known[key]
                outcome = found
            if i == last and kept != known:
                self._write(kept)
            yield outcome


def _decoded(text: str | None) -> TextOutcome | None:
    """The outcome a kept JSON text holds (``[valid, value]``); None when none."""
    if text is None:
        return None
    try:
        kept = json.loads(text)
    except ValueError:
        return None
    if not isinstance(kept, list) or len(kept) != 2 or not isinstance(kept[0], bool):
        return None
    return kept[1], None, kept[0]
