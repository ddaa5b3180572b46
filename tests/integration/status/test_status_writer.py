"""Status documents in a real Git repository: comments survive, no empty commits,
and the daemon recognises its own status commits."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.status import STATUS_TRAILER, StatusWriter, own_status_only

REF = "refs/heads/main"
AUTHOR = ("reconciler", "bot@example.test")
HUMAN = pygit2.Signature("dev", "dev@example.test")


def _repo(tmp_path: Path) -> pygit2.Repository:
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    commit_files(repo, REF, {
        "reconciler.yaml": b"kind: Fleet\n",
        "status/cells/a.yaml": b"# owned by the platform team: do not rename\n"
                               b"cell: a\nservices:\n  api:\n    version: 1.0.0  # pinned\n"
                               b"    health: Healthy\n"}, "seed", HUMAN)
    repo.set_head(REF)
    return repo


def test_comment_and_order_survive_an_update(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    w = StatusWriter(repo, REF, AUTHOR)
    sha = w.write({"status/cells/a.yaml": {"cell": "a", "services": {
        "api": {"version": "1.1.0", "health": "Progressing"}}}}, "tick")
    assert sha is not None
    text = read_file(repo, head_commit(repo, REF), "status/cells/a.yaml")
    assert text is not None
    out = text.decode()
    assert out.startswith("# owned by the platform team: do not rename\n")
    assert "version: 1.1.0  # pinned" in out
    assert out.index("cell:") < out.index("services:")
    commit = head_commit(repo, REF)
    assert commit is not None and STATUS_TRAILER in commit.message
    assert commit.author.email == AUTHOR[1]


def test_no_commit_when_nothing_changed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    w = StatusWriter(repo, REF, AUTHOR)
    doc = {"status/rollouts/api.yaml": {"service": "api", "waves": {"canary": {"state": "done"}}}}
    first = w.write(doc, "tick 1")
    assert first is not None
    assert w.write(doc, "tick 2") is None
    head = head_commit(repo, REF)
    assert head is not None and str(head.id) == first


def test_many_documents_one_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    before = head_commit(repo, REF)
    w = StatusWriter(repo, REF, AUTHOR)
    sha = w.write({f"status/cells/c{i}.yaml": {"cell": f"c{i}"} for i in range(5)}, "tick")
    head = head_commit(repo, REF)
    assert head is not None and str(head.id) == sha and before is not None
    assert [p.id for p in head.parents] == [before.id]


def test_own_status_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    start = str(head_commit(repo, REF).id)  # type: ignore[union-attr]
    w = StatusWriter(repo, REF, AUTHOR)
    mine = w.write({"status/desired.yaml": {"valid": True}}, "tick")
    assert mine is not None
    assert own_status_only(repo, start, mine, AUTHOR[1])
    assert not own_status_only(repo, start, mine, "someone@else")
    human = commit_files(repo, REF, {"status/desired.yaml": b"valid: false\n"}, "hand edit",
                         HUMAN)
    assert human is not None
    assert not own_status_only(repo, start, human, AUTHOR[1])
    sig = pygit2.Signature(*AUTHOR)
    sneaky = commit_files(repo, REF, {"releases/api.yaml": b"x: 1\n"},
                          f"status: x\n\n{STATUS_TRAILER}\n", sig)
    assert sneaky is not None
    assert not own_status_only(repo, human, sneaky, AUTHOR[1])


def test_refuses_paths_outside_status(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    import pytest

    with pytest.raises(ValueError, match="status/"):
        StatusWriter(repo, REF, AUTHOR).write({"releases/api.yaml": {"x": 1}}, "tick")


def test_unchanged_documents_are_not_merged_again(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A publish merges (ruamel round trip) only the files whose document or text in Git
    changed since the last one; a hand edit of the file in Git is merged again."""
    import reconciler.adapters.git.status as status
    from reconciler.adapters.git.commits import tree_at as real_tree_at
    from reconciler.core.statusyaml import render as real

    repo = _repo(tmp_path)
    w = StatusWriter(repo, REF, AUTHOR)
    merged: list[str] = []

    def counting(old: bytes | None, doc: dict[str, object]) -> bytes:
        merged.append(str(doc.get("cell")))
        return real(old, doc)

    monkeypatch.setattr(status, "render", counting)
    trees: list[str] = []

    def reading(repo: pygit2.Repository, commit: pygit2.Commit | None,
                d: str) -> pygit2.Tree | None:
        trees.append(d)
        return real_tree_at(repo, commit, d)

    monkeypatch.setattr(status, "tree_at", reading)
    docs: dict[str, dict[str, object]] = {
        f"status/cells/{c}.yaml": {"cell": c, "services": {"api": {"version": "1.0.0"}}}
        for c in ("a", "b", "c")}
    assert w.write(docs, "tick") is not None
    assert sorted(merged) == ["a", "b", "c"]
    assert trees == ["status/cells"]  # one directory: its tree read once, not per file
    for path, doc in docs.items():  # why a file's own merge result may be reused
        text = read_file(repo, head_commit(repo, REF), path)
        assert real(text, doc) == text
    merged.clear()
    changed: dict[str, dict[str, object]] = {
        **docs, "status/cells/b.yaml": {"cell": "b", "services": {"api": {"version": "2.0.0"}}}}
    assert w.write(changed, "tick") is not None
    assert merged == ["b"]
    merged.clear()
    commit_files(repo, REF, {"status/cells/c.yaml": b"# hand edit\ncell: c\n"}, "edit", HUMAN)
    w.write(changed, "tick")
    assert merged == ["c"]
    text = read_file(repo, head_commit(repo, REF), "status/cells/c.yaml")
    assert text is not None and text.decode().startswith("# hand edit\n")
