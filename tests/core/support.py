"""Test support for the core: an in-memory repository source built from fixture files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from reconciler.core.source import FileEntry

FIXTURES = Path(__file__).parent / "fixtures"
BASE = FIXTURES / "base"


class DictSource:
    """A RepoSource over a dict of path -> bytes (symlinks given as ``symlink:`` values)."""

    def __init__(self, files: Mapping[str, bytes], revision: str = "test-rev") -> None:
        self.files = dict(files)
        self.revision = revision

    def entries(self) -> Iterable[FileEntry]:
        for path, data in sorted(self.files.items()):
            link = data.startswith(b"symlink:")
            yield FileEntry(path, hashlib.sha1(data).hexdigest(), len(data), link)

    def read(self, path: str) -> bytes:
        return self.files[path]


def base_files() -> dict[str, bytes]:
    """The base fixture repository as a dict."""
    return {p.relative_to(BASE).as_posix(): p.read_bytes()
            for p in sorted(BASE.rglob("*")) if p.is_file()}


def overlay(changes: Mapping[str, str | None]) -> DictSource:
    """The base repository with files replaced (str), added, or deleted (None)."""
    files = base_files()
    for path, text in changes.items():
        if text is None:
            files.pop(path, None)
        else:
            files[path] = text.encode()
    return DictSource(files)
