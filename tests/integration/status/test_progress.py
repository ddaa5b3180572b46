"""Rollout progress kept in Git status: committed at once, read back after a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pygit2

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.progress import GitProgressStore
from reconciler.adapters.git.status import STATUS_TRAILER

REF = "refs/heads/main"
AUTHOR = ("reconciler", "bot@example.test")


def test_bake_and_failure_survive_a_restart(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    commit_files(repo, REF, {"reconciler.yaml": b"kind: Fleet\n",
                             "status/rollouts/api.yaml": b"# rollout of api\nservice: api\n"},
                 "seed", pygit2.Signature("dev", "dev@example.test"))
    store = GitProgressStore(repo, REF, AUTHOR)
    at = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
    store.start_bake("api", "canary", "1.5.0", at)
    store.record_failure("api", "one-zone", "1.6.0", "alarm http-error-rate 0.03 > 0.02")
    head = head_commit(repo, REF)
    assert head is not None and STATUS_TRAILER in head.message
    text = read_file(repo, head, "status/rollouts/api.yaml")
    assert text is not None and text.startswith(b"# rollout of api\n")

    again = GitProgressStore(pygit2.Repository(str(tmp_path / "r.git")), REF, AUTHOR)
    progress = again.rollout()["api"]
    assert str(progress["canary"].version) == "1.5.0"
    assert progress["canary"].bake_started_at == at
    assert str(progress["one-zone"].failed_version) == "1.6.0"
    assert progress["one-zone"].failure_reason.startswith("alarm http-error-rate")


def test_a_failure_is_kept_until_its_revert_is_pushed(tmp_path: Path) -> None:
    """Before: the failure was forgotten as soon as the queued revert was desired; when
    the revert was then set aside on a moved remote, nothing held the version back."""
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    dev = pygit2.Signature("dev", "dev@example.test")
    commit_files(repo, REF, {"releases/api.yaml": b"version: 1.6.0\n"}, "bump", dev)
    pushed = "refs/remotes/origin/main"
    head = head_commit(repo, REF)
    assert head is not None
    repo.references.create(pushed, head.id)
    store = GitProgressStore(repo, REF, AUTHOR, pushed_ref=pushed)
    store.record_failure("api", "canary", "1.6.0", "alarm")
    commit_files(repo, REF, {"releases/api.yaml": b"version: 1.5.0\n"},
                 f"Roll back api 1.6.0 in canary\n\nalarm\n\nReconciler-Status: true\n"
                 f"Reconciler-Rollback-Of: {head.id}\n", dev)
    assert store.clear_failure("api", "canary") is False  # the revert is still queued
    kept = store.rollout()["api"]["canary"]
    assert str(kept.failed_version) == "1.6.0"
    assert kept.revert_pending  # what the planner reads: no forget-failure step meanwhile
    assert store.clear_failure("other", "canary") is True  # not another service's revert

    now = head_commit(repo, REF)
    assert now is not None
    repo.references.create(pushed, now.id, force=True)  # the remote took the queue
    assert not store.rollout()["api"]["canary"].revert_pending
    assert store.clear_failure("api", "canary") is True
    canary = store.rollout().get("api", {}).get("canary")
    assert canary is None or canary.failed_version is None
