"""Fleet ``spec.status`` is honoured in a real Git repository: with ``path: ops/status``
and an author, status and progress are committed under ops/status by that author, the
daemon recognises those commits as its own (no new plan), progress is read back from
ops/status/rollouts, and a replay keeps our side of conflicts there."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.history import History
from reconciler.adapters.git.progress import GitProgressStore
from reconciler.adapters.git.remote import RebaseConflict, _replay
from reconciler.adapters.git.status import STATUS_TRAILER, StatusWriter, own_status_only
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.core.loader import load_repository
from reconciler.core.statusdocs import StatusTarget, status_documents, status_target
from tests.core.support import base_files

REF = "refs/heads/main"
OPERATOR = ("reconciler", "ops-bot@example.test")
HUMAN = pygit2.Signature("dev", "dev@example.test")
STATUS = (b"  status:\n    path: ops/status\n"
          b"    author: {name: Release Bot, email: release-bot@example.test}\n")


def _fleet_repo(tmp_path: Path) -> tuple[pygit2.Repository, str, StatusTarget]:
    """A bare repository whose Fleet sets ``status``; the human commit and the target
    the daemon derives from its loaded (last good) desired state."""
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    files = base_files()
    files["reconciler.yaml"] += STATUS
    human = commit_files(repo, REF, files, "fleet with its own status target", HUMAN)
    assert human is not None
    repo.set_head(REF)
    result = load_repository(GitTreeSource(repo, human))
    assert result.errors == () and result.desired is not None
    return repo, human, status_target(result.desired.fleet.status, OPERATOR)


def _changed(repo: pygit2.Repository, sha: str) -> list[str]:
    commit = repo[sha]
    assert isinstance(commit, pygit2.Commit)
    diff = commit.parents[0].tree.diff_to_tree(commit.tree)
    return sorted(d.new_file.path for d in diff.deltas)


def test_status_and_progress_go_to_the_configured_directory_by_its_author(
        tmp_path: Path) -> None:
    repo, human, target = _fleet_repo(tmp_path)
    assert target.directory == "ops/status"
    assert target.author == ("Release Bot", "release-bot@example.test")

    writer = StatusWriter(repo, REF, OPERATOR, lambda: target)
    docs = status_documents(None, None, {}, human, human, [], target.directory)
    status = writer.write(docs, "fleet at h")
    assert status is not None
    commit = repo[status]
    assert isinstance(commit, pygit2.Commit)
    assert (commit.author.name, commit.author.email) == target.author
    assert STATUS_TRAILER in commit.message
    assert _changed(repo, status) == ["ops/status/desired.yaml"]
    assert read_file(repo, head_commit(repo, REF), "status/desired.yaml") is None
    with pytest.raises(ValueError, match="ops/status/"):
        writer.write({"status/desired.yaml": {"valid": True}}, "tick")

    store = GitProgressStore(repo, REF, OPERATOR, lambda: target)
    at = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
    store.start_bake("app", "canary", "1.5.0", at)
    bake = str(head_commit(repo, REF).id)
    assert _changed(repo, bake) == ["ops/status/rollouts/app.yaml"]
    assert repo[bake].author.email == "release-bot@example.test"

    again = GitProgressStore(pygit2.Repository(str(tmp_path / "r.git")), REF, OPERATOR,
                             lambda: target)
    progress = again.rollout()["app"]["canary"]
    assert str(progress.version) == "1.5.0" and progress.bake_started_at == at
    assert GitProgressStore(repo, REF, OPERATOR).rollout() == {}  # nothing under status/


def test_own_status_commits_by_either_identity_never_replan(tmp_path: Path) -> None:
    repo, human, target = _fleet_repo(tmp_path)
    StatusWriter(repo, REF, OPERATOR, lambda: target).write(
        status_documents(None, None, {}, human, human, [], target.directory), "tick")
    by_operator = commit_files(repo, REF, {"ops/status/cells/a.yaml": b"cell: a\n"},
                               f"status: tick\n\n{STATUS_TRAILER}\n",
                               pygit2.Signature(*OPERATOR))
    assert by_operator is not None

    assert own_status_only(repo, human, by_operator, target.emails, target.directory)
    assert not own_status_only(repo, human, by_operator, target.emails)  # status/ only
    assert not own_status_only(repo, human, by_operator, OPERATOR[1], target.directory)
    history = History(tmp_path / "r.git", OPERATOR[1], None, lambda: target)
    assert history.desired_head(by_operator) == human
    assert History(tmp_path / "r.git", OPERATOR[1]).desired_head(by_operator) == by_operator

    outside = commit_files(repo, REF, {"status/desired.yaml": b"valid: true\n"},
                           f"status: tick\n\n{STATUS_TRAILER}\n",
                           pygit2.Signature(*target.author))
    assert outside is not None
    assert history.desired_head(outside) == outside  # not under ops/status: a new state
    no_trailer = commit_files(repo, REF, {"ops/status/desired.yaml": b"valid: 1\n"},
                              "status: tick", pygit2.Signature(*target.author))
    assert no_trailer is not None
    assert history.desired_head(no_trailer) == no_trailer


def test_replay_keeps_our_side_only_under_the_configured_directory(tmp_path: Path) -> None:
    repo, human, target = _fleet_repo(tmp_path)
    base = repo[human]
    assert isinstance(base, pygit2.Commit)
    sig = pygit2.Signature(*target.author)

    def child(path: str, text: bytes, ref: str) -> pygit2.Commit:
        repo.references.create(ref, base.id, force=True)
        sha = commit_files(repo, ref, {path: text}, f"status: x\n\n{STATUS_TRAILER}\n", sig)
        commit = repo[sha]
        assert isinstance(commit, pygit2.Commit)
        return commit

    theirs = child("ops/status/desired.yaml", b"valid: false\n", "refs/heads/theirs")
    ours = child("ops/status/desired.yaml", b"valid: true\n", "refs/heads/ours")
    new = _replay(repo, ours, theirs, sig, target.directory)
    assert new is not None
    replayed = repo[new]
    assert isinstance(replayed, pygit2.Commit)
    assert read_file(repo, replayed, "ops/status/desired.yaml") == b"valid: true\n"
    with pytest.raises(RebaseConflict):
        _replay(repo, ours, theirs, sig)  # the default directory: a conflict elsewhere
