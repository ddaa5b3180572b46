"""Loose objects checked in Python (reconciler.adapters.git.loose): libgit2 1.9 loops
forever on some damaged loose objects, so the damage must be found here first."""

from __future__ import annotations

import zlib
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.git import odbcheck as loose

SIG = pygit2.Signature("t", "t@example.test", 1_700_000_000, 0)


def _commit(repo: pygit2.Repository, text: str, parents: list[pygit2.Oid]) -> pygit2.Oid:
    blob = repo.create_blob(text.encode())
    tb = repo.TreeBuilder()
    tb.insert("status.yaml", blob, pygit2.enums.FileMode.BLOB)
    return repo.create_commit(None, SIG, SIG, f"{text}\n", tb.write(), parents)


@pytest.fixture
def repo(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "r.git"), bare=True)


def _objects(repo: pygit2.Repository) -> Path:
    return Path(repo.path) / "objects"


def _rewrite(repo: pygit2.Repository, oid: pygit2.Oid, data: bytes) -> None:
    path = loose.path_of(_objects(repo), str(oid))
    path.chmod(0o644)
    path.write_bytes(data)


def test_a_sound_commit_reads_back_with_its_links(repo: pygit2.Repository) -> None:
    first = _commit(repo, "one", [])
    second = _commit(repo, "two", [first])
    obj = loose.read(_objects(repo), str(second))
    assert obj is not None and obj.kind == b"commit"
    commit = repo[second]
    assert isinstance(commit, pygit2.Commit)
    assert loose.links(obj) == [str(commit.tree_id), str(first)]
    tree = loose.read(_objects(repo), str(commit.tree_id))
    assert tree is not None and loose.links(tree) == [str(commit.tree["status.yaml"].id)]


def test_an_object_that_is_not_loose_is_none(repo: pygit2.Repository) -> None:
    assert loose.read(_objects(repo), "ab" * 20) is None


CUTS = {
    "cut after 40 bytes with garbage (libgit2 1.9 hangs on some)":
        lambda raw: raw[:40] + b"\0garbage" * 4,
    "cut short": lambda raw: raw[:20],
    "empty": lambda raw: b"",
    "not zlib": lambda raw: b"garbage" * 10,
    "another object's bytes": lambda raw: zlib.compress(b"blob 3\0abc"),
    "a bad header": lambda raw: zlib.compress(b"commit x\0abc"),
    "a wrong size": lambda raw: zlib.compress(b"commit 99\0abc"),
}


@pytest.mark.parametrize("damage", CUTS.values(), ids=CUTS.keys())
def test_damage_is_found_without_libgit2(repo: pygit2.Repository, damage: object) -> None:
    oid = _commit(repo, "one", [])
    raw = loose.path_of(_objects(repo), str(oid)).read_bytes()
    assert callable(damage)
    _rewrite(repo, oid, damage(raw))
    with pytest.raises(loose.DamagedObject):
        loose.read(_objects(repo), str(oid))
    with pytest.raises(loose.DamagedObject):
        loose.check_chain(_objects(repo), str(oid), None, 10)


def test_many_cut_objects_are_all_found(repo: pygit2.Repository) -> None:
    """The pattern that hung CI: hundreds of commits cut at 40 bytes, each found damaged
    (libgit2 hung within about 200 of these)."""
    for i in range(300):
        oid = _commit(repo, f"commit {i}", [])
        raw = loose.path_of(_objects(repo), str(oid)).read_bytes()
        _rewrite(repo, oid, raw[:40] + b"\0garbage" * 4)
        with pytest.raises(loose.DamagedObject):
            loose.check_commit(_objects(repo), str(oid))


def test_salvage_copies_the_queue_oldest_first(repo: pygit2.Repository,
                                               tmp_path: Path) -> None:
    base = _commit(repo, "base", [])
    fresh = pygit2.init_repository(str(tmp_path / "fresh.git"), bare=True)
    fresh.odb.write(pygit2.enums.ObjectType.BLOB, b"unrelated")
    q1 = _commit(repo, "q1", [base])
    q2 = _commit(repo, "q2", [q1])
    got = loose.salvage(_objects(repo), str(q2), fresh, str(base), 100)
    assert got == [str(q1), str(q2)]
    commit = fresh[q2]
    assert isinstance(commit, pygit2.Commit)
    blob = commit.tree["status.yaml"]
    assert isinstance(blob, pygit2.Blob) and blob.data == b"q2"


def test_salvage_refuses_a_damaged_queue_and_a_runaway_one(repo: pygit2.Repository,
                                                           tmp_path: Path) -> None:
    fresh = pygit2.init_repository(str(tmp_path / "fresh.git"), bare=True)
    tip = _commit(repo, "0", [])
    for i in range(1, 5):
        tip = _commit(repo, str(i), [tip])
    with pytest.raises(loose.DamagedObject, match="more than 3"):
        loose.salvage(_objects(repo), str(tip), fresh, None, 3)
    blob = repo[tip].tree["status.yaml"].id
    _rewrite(repo, blob, b"garbage")
    with pytest.raises(loose.DamagedObject):
        loose.salvage(_objects(repo), str(tip), fresh, None, 100)


def _packed(repo: pygit2.Repository) -> tuple[Path, Path]:
    for i in range(5):
        _commit(repo, f"packed {i}", [])
    assert repo.pack() > 0
    idx = next((_objects(repo) / "pack").glob("*.idx"))
    return idx, idx.with_suffix(".pack")


def test_sound_packs_pass_and_are_checked_once(repo: pygit2.Repository) -> None:
    idx, _ = _packed(repo)
    loose.check_packs(_objects(repo))
    key = (str(idx), idx.stat().st_size, idx.stat().st_mtime_ns)
    assert key in loose._CHECKED
    loose.check_packs(_objects(repo))


@pytest.mark.parametrize("which", ["idx", "pack"])
@pytest.mark.parametrize("damage", [lambda raw: raw[:40] + b"\0garbage" * 4,
                                    lambda raw: raw[:-21] + bytes([raw[-21] ^ 1]) + raw[-20:],
                                    lambda raw: raw[:10]],
                         ids=["garbage", "one bit", "cut"])
def test_a_damaged_pack_or_index_is_found(repo: pygit2.Repository, which: str,
                                          damage: object) -> None:
    """libgit2 crashed the process (SIGSEGV) reading a pack index like these."""
    idx, pack = _packed(repo)
    target = idx if which == "idx" else pack
    assert callable(damage)
    target.chmod(0o644)
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(loose.DamagedObject):
        loose.check_packs(_objects(repo))
