"""A Git object store checked in Python, before libgit2 is let near it.

Owns: reading a loose object (``objects/xx/yyyy…``) with ``zlib`` under a size bound and
checking its header and its SHA-1; the links of a commit and a tree; checking each pack
and pack index against the SHA-1 trailer Git wrote into it (once per file version); and
the two uses the remote's cache has for them. libgit2 1.9 loops forever on some damaged
loose objects (seen: a file cut after 40 bytes with garbage after it; ``repo[oid]`` never
returns and holds the GIL) and crashes the process on a damaged pack index, so a cache
that may be damaged is checked here first, and the queued commits of a damaged cache are
salvaged here, without libgit2 reading its objects.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

#: A loose object larger than this counts as damaged (our commits are a few KiB).
MAX_OBJECT = 64 * 1024 * 1024
_TYPES = {b"commit": pygit2.enums.ObjectType.COMMIT, b"tree": pygit2.enums.ObjectType.TREE,
          b"blob": pygit2.enums.ObjectType.BLOB, b"tag": pygit2.enums.ObjectType.TAG}
_GITLINK = 0o160000


class DamagedObject(ValueError):
    """A loose object that does not inflate, or whose header or hash is wrong."""


@dataclass(frozen=True)
class Loose:
    """One checked loose object."""

    oid: str
    kind: bytes
    body: bytes

    @property
    def type(self) -> pygit2.enums.ObjectType:
        return _TYPES[self.kind]


_CHECKED: set[tuple[str, int, int]] = set()  # pack files whose trailer matched
_CHECKED_LOCK = threading.Lock()
_TRAILER = 20


def check_packs(objects: Path) -> None:
    """DamagedObject unless every pack and pack index under ``objects/pack`` ends with the
    SHA-1 of the rest of it, and each index names its pack's checksum."""
    pack_dir = objects / "pack"
    try:
        indexes = sorted(pack_dir.glob("*.idx"))
    except OSError as e:
        raise DamagedObject(f"cannot list {pack_dir}: {e.strerror}") from None
    for idx in indexes:
        pack = idx.with_suffix(".pack")
        pack_sum = _trailer_checked(pack)
        idx_sum = _trailer_checked(idx)
        try:
            with idx.open("rb") as f:
                f.seek(-2 * _TRAILER, 2)
                named = f.read(_TRAILER)
        except OSError as e:
            raise DamagedObject(f"{idx.name}: {e.strerror}") from None
        if pack_sum is not None and idx_sum is not None and named != pack_sum:
            raise DamagedObject(f"{idx.name} does not belong to {pack.name}")


def _trailer_checked(path: Path) -> bytes | None:
    """The file's SHA-1 trailer, checked (None when already checked in this version)."""
    try:
        st = path.stat()
    except OSError as e:
        raise DamagedObject(f"{path.name}: {e.strerror}") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _CHECKED_LOCK:
        if key in _CHECKED:
            return None
    digest = hashlib.sha1(usedforsecurity=False)
    try:
        with path.open("rb") as f:
            left = st.st_size - _TRAILER
            if left < 0:
                raise DamagedObject(f"{path.name} is cut short")
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise DamagedObject(f"{path.name} is cut short")
                digest.update(chunk)
                left -= len(chunk)
            trailer = f.read(_TRAILER)
    except OSError as e:
        raise DamagedObject(f"{path.name}: {e.strerror}") from None
    if trailer != digest.digest():
        raise DamagedObject(f"{path.name} does not match its checksum")
    with _CHECKED_LOCK:
        _CHECKED.add(key)
    return trailer


def path_of(objects: Path, oid: str) -> Path:
    return objects / oid[:2] / oid[2:]


def read(objects: Path, oid: str) -> Loose | None:
    """The loose object ``oid`` under ``objects``, checked; None when it is not loose."""
    try:
        raw = path_of(objects, oid).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DamagedObject(f"object {oid}: {e.strerror}") from None
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(raw, MAX_OBJECT + 64)
        complete = inflater.eof and not inflater.unconsumed_tail
    except zlib.error as e:
        raise DamagedObject(f"object {oid} does not inflate: {e}") from None
    if not complete:
        raise DamagedObject(f"object {oid} is cut short or too large")
    header, nul, body = data.partition(b"\0")
    kind, _, size = header.partition(b" ")
    if not nul or kind not in _TYPES or not size.isdigit() or int(size) != len(body):
        raise DamagedObject(f"object {oid} has a bad header")
    if hashlib.sha1(data, usedforsecurity=False).hexdigest() != oid:
        raise DamagedObject(f"object {oid} does not match its hash")
    return Loose(oid, kind, body)


def links(obj: Loose) -> list[str]:
    """The objects ``obj`` names: a commit's tree and parents, a tree's entries (not
    submodule commits), a tag's target."""
    if obj.kind == b"tree":
        return list(_tree_ids(obj))
    out: list[str] = []
    for line in obj.body.split(b"\n\n", 1)[0].split(b"\n"):
        word, _, value = line.partition(b" ")
        if word in (b"tree", b"parent", b"object"):
            out.append(value.decode("ascii", "replace"))
    return out


def _tree_ids(obj: Loose) -> Iterator[str]:
    body, at = obj.body, 0
    while at < len(body):
        space, nul = body.find(b" ", at), body.find(b"\0", at)
        if space < 0 or nul < 0 or nul + 21 > len(body):
            raise DamagedObject(f"tree {obj.oid} is malformed")
        mode = int(body[at:space] or b"0", 8)
        if mode != _GITLINK:
            yield body[nul + 1:nul + 21].hex()
        at = nul + 21


def check_commit(objects: Path, oid: str) -> None:
    """DamagedObject unless the commit ``oid`` and its root tree, where loose, read back."""
    obj = read(objects, oid)
    if obj is None:
        return
    if obj.kind != b"commit" or not links(obj):
        raise DamagedObject(f"object {oid} is not a commit")
    read(objects, links(obj)[0])


def check_chain(objects: Path, tip: str, stop: str | None, limit: int) -> None:
    """Check the loose commits from ``tip`` back to ``stop`` (our queue) and their root
    trees; DamagedObject on damage or when the chain runs past ``limit`` commits."""
    todo, seen = [tip], set[str]()
    while todo:
        oid = todo.pop()
        if oid == stop or oid in seen:
            continue
        seen.add(oid)
        if len(seen) > limit:
            raise DamagedObject(f"more than {limit} commits between {tip} and {stop}")
        obj = read(objects, oid)
        if obj is None:
            continue  # packed: fetched history
        check_commit(objects, oid)
        todo.extend(links(obj)[1:])


def salvage(objects: Path, tip: str, known: pygit2.Repository, stop: str | None,
            limit: int) -> list[str]:
    """Copy the commits from ``tip`` back to what ``known`` (a fresh clone) already has,
    with every object they need, from the loose objects under ``objects`` into ``known``;
    their ids, oldest first. DamagedObject when one is damaged, missing or past ``limit``."""
    commits: list[str] = []
    todo, seen = [tip], set[str]()
    while todo:
        oid = todo.pop()
        if oid == stop or oid in seen or pygit2.Oid(hex=oid) in known.odb:
            continue
        seen.add(oid)
        if len(seen) > limit:
            raise DamagedObject(f"more than {limit} commits to carry over from {tip}")
        obj = _need(objects, oid)
        if obj.kind != b"commit":
            raise DamagedObject(f"object {oid} is not a commit")
        commits.append(oid)
        todo.extend(links(obj)[1:])
    for oid in commits:
        _copy(objects, oid, known)
    return _oldest_first(objects, commits)


def _need(objects: Path, oid: str) -> Loose:
    obj = read(objects, oid)
    if obj is None:
        raise DamagedObject(f"object {oid} is neither loose nor in the new clone")
    return obj


def _copy(objects: Path, oid: str, known: pygit2.Repository) -> None:
    todo, done = [oid], set[str]()
    while todo:
        current = todo.pop()
        if current in done or pygit2.Oid(hex=current) in known.odb:
            continue
        done.add(current)
        obj = _need(objects, current)
        if obj.kind != b"commit":  # parents are copied as commits of their own
            todo.extend(links(obj))
        else:
            todo.append(links(obj)[0])
        known.odb.write(obj.type, obj.body)


def _oldest_first(objects: Path, commits: list[str]) -> list[str]:
    """Parents before children (the queue is a chain; merges keep a valid order)."""
    wanted, out, placed = set(commits), list[str](), set[str]()

    def place(oid: str) -> None:
        stack = [(oid, False)]
        while stack:
            current, expanded = stack.pop()
            if current in placed:
                continue
            if expanded:
                placed.add(current)
                out.append(current)
                continue
            stack.append((current, True))
            obj = _need(objects, current)
            stack.extend((p, False) for p in links(obj)[1:] if p in wanted and p not in placed)

    for oid in commits:
        place(oid)
    return out
