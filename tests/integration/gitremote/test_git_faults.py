"""Git faults in the daemon's remote (issue #14 item 10), against a real HTTP remote: a
queued commit that cannot be replayed is set aside under a ref, a damaged cache is moved
aside and cloned again, and credentials in the URL never reach the cache's config."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import TemporaryError
from reconciler.adapters.git.commits import commit_files
from reconciler.adapters.git.remote import RemoteAuth, RemoteRepo
from reconciler.testing.gitserver import HttpGitServer, git

from .conftest import PASSWORD, USER

pytestmark = pytest.mark.git
BOT = pygit2.Signature("reconciler", "bot@example.test", 1_700_000_000, 0)


def _http(server: HttpGitServer, tmp_path: Path, name: str = "cache") -> RemoteRepo:
    pw = tmp_path / "git-password"
    pw.write_text(PASSWORD + "\n")
    return RemoteRepo(server.url("fleet.git"), tmp_path / name,
                      auth=RemoteAuth(username=USER, password_file=str(pw)))


def _commit(remote: RemoteRepo, path: str, text: str) -> str:
    sha = commit_files(remote.repo, remote.local_ref, {path: text.encode()},
                       f"revert {path}\n", BOT)
    assert sha is not None
    return sha


def _human_push(root: Path, tmp_path: Path, path: str, text: str) -> None:
    work = tmp_path / "human"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(root / "fleet.git"), str(work))
    git(work, "pull", "-q", "--rebase")
    (work / path).write_text(text)
    git(work, "commit", "-qam", f"human edits {path}")
    git(work, "push", "-q", "origin", "main")


def _remote_head(root: Path) -> str:
    return git(root / "fleet.git", "rev-parse", "main")


def _set_aside(remote: RemoteRepo) -> dict[str, str]:
    repo = remote.repo
    return {name: str(repo.references[name].target) for name in repo.references
            if name.startswith("refs/reconciler/set-aside/")}


# ---------------------------------------------------------------- set aside


def test_queued_commit_that_conflicts_is_set_aside(http_server: HttpGitServer, root: Path,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Before: sync() and push() raised RebaseConflict (a PermanentError) forever."""
    remote = _http(http_server, tmp_path)
    remote.sync()
    ours = _commit(remote, "releases/api.yaml", "version: 0.9.0\n")  # a revert, say
    _human_push(root, tmp_path, "releases/api.yaml", "version: 3.0.0\n")
    with caplog.at_level(logging.ERROR, logger="reconciler.git"):
        assert remote.sync() == _remote_head(root)
    kept = _set_aside(remote)
    assert list(kept.values()) == [ours]  # kept for a person, under its own ref
    (name,) = kept
    assert name.endswith(f"-{ours[:12]}")
    assert remote.pending() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(name in m and "releases/api.yaml" in m for m in errors), errors
    # the daemon goes on: the next commit is pushed on top of the human's
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.push() is True
    assert git(root / "fleet.git", "show", "main:releases/api.yaml") == "version: 3.0.0"
    assert git(root / "fleet.git", "show", "main:status/desired.yaml") == "valid: true"


def test_only_the_conflicting_commit_is_set_aside(http_server: HttpGitServer, root: Path,
                                                 tmp_path: Path) -> None:
    """Before: the whole queue was set aside and the branch reset to the remote's, so the
    failure record queued with a revert was lost and the failed version went out again."""
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/failures.yaml", "api: 1.6.0\n")
    ours = _commit(remote, "releases/api.yaml", "version: 0.9.0\n")  # the revert
    _commit(remote, "status/bakes.yaml", "wave-1: 1.5.0\n")
    _human_push(root, tmp_path, "releases/api.yaml", "version: 3.0.0\n")
    remote.push(backoff=0.01)
    assert list(_set_aside(remote).values()) == [ours]
    assert remote.pending() == 0
    assert git(root / "fleet.git", "show", "main:releases/api.yaml") == "version: 3.0.0"
    assert git(root / "fleet.git", "show", "main:status/failures.yaml") == "api: 1.6.0"
    assert git(root / "fleet.git", "show", "main:status/bakes.yaml") == "wave-1: 1.5.0"


def test_conflict_found_while_pushing_is_set_aside(http_server: HttpGitServer, root: Path,
                                                   tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    ours = _commit(remote, "releases/api.yaml", "version: 0.9.0\n")
    _human_push(root, tmp_path, "releases/api.yaml", "version: 3.0.0\n")
    remote.push(backoff=0.01)  # no RebaseConflict
    assert list(_set_aside(remote).values()) == [ours]
    assert remote.head() == _remote_head(root)
    assert git(root / "fleet.git", "show", "main:releases/api.yaml") == "version: 3.0.0"


# ---------------------------------------------------------------- damaged cache


def _delete_head(cache: Path) -> None:
    (cache / "HEAD").unlink()


def _garbage_refs(cache: Path) -> None:
    (cache / "packed-refs").write_text("garbage\n")
    for ref in (cache / "refs").rglob("*"):
        if ref.is_file():
            ref.write_text("not a sha\n")


def _garbage_objects(cache: Path) -> None:
    for f in (cache / "objects").rglob("*"):
        if f.is_file():
            f.chmod(0o644)
            f.write_bytes(f.read_bytes()[:40] + b"\0garbage" * 4)


@pytest.mark.parametrize("damage", [_delete_head, _garbage_refs, _garbage_objects])
def test_damaged_cache_is_moved_aside_and_cloned_again(
        http_server: HttpGitServer, root: Path, tmp_path: Path, damage: object,
        caplog: pytest.LogCaptureFixture) -> None:
    """Before: every sync() failed ("cannot fetch the repository yet", forever)."""
    remote = _http(http_server, tmp_path)
    remote.sync()
    _human_push(root, tmp_path, "releases/api.yaml", "version: 2.0.0\n")
    assert callable(damage)
    damage(tmp_path / "cache")
    with caplog.at_level(logging.ERROR, logger="reconciler.git"):
        assert remote.sync() == _remote_head(root)
    aside = sorted(tmp_path.glob("cache.corrupt-*"))
    assert len(aside) == 1
    assert any("damaged" in r.getMessage() and str(aside[0]) in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    assert remote.sync() == _remote_head(root)  # healthy from now on
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.push() is True


def test_readable_queued_commits_survive_a_re_clone(http_server: HttpGitServer, root: Path,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    (tmp_path / "cache" / "config").write_text("[core\n garbage = = =\n")  # no 'origin'
    with caplog.at_level(logging.WARNING, logger="reconciler.git"):
        remote.sync()
    assert len(list(tmp_path.glob("cache.corrupt-*"))) == 1
    assert remote.pending() == 1
    assert remote.push() is True
    assert git(root / "fleet.git", "show", "main:status/desired.yaml") == "valid: true"
    assert any("carried 1 unpushed" in r.getMessage() for r in caplog.records)


def test_unreadable_queued_commits_are_reported_lost(http_server: HttpGitServer, root: Path,
                                                     tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    _delete_head(tmp_path / "cache")
    _garbage_objects(tmp_path / "cache")
    with caplog.at_level(logging.ERROR, logger="reconciler.git"):
        assert remote.sync() == _remote_head(root)
    assert any("lost" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR)


def test_network_error_is_not_mistaken_for_damage(root: Path, tmp_path: Path) -> None:
    server = HttpGitServer(root, USER, PASSWORD).start()
    remote = _http(server, tmp_path)
    remote.sync()
    server.stop()
    with pytest.raises(TemporaryError):
        remote.sync()
    assert not list(tmp_path.glob("cache.corrupt-*"))


# ---------------------------------------------------------------- credentials on disk


def test_credentials_in_the_url_never_reach_the_cache(http_server: HttpGitServer,
                                                      root: Path, tmp_path: Path) -> None:
    """Before: git/config held https://user:token@... with mode 0644."""
    cache = tmp_path / "state" / "git"
    remote = RemoteRepo(http_server.url("fleet.git", userinfo=True), cache)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.push() is True
    for f in cache.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    config = (cache / "config").read_text()
    assert http_server.url("fleet.git") in config
    assert stat.S_IMODE((cache / "config").stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert PASSWORD not in repr(remote)


def test_old_cache_with_credentials_in_config_is_cleaned(http_server: HttpGitServer,
                                                         tmp_path: Path) -> None:
    cache = tmp_path / "git"
    git(tmp_path, "clone", "-q", "--bare", http_server.url("fleet.git", userinfo=True),
        str(cache))
    git(cache, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
    assert PASSWORD in (cache / "config").read_text()
    RemoteRepo(http_server.url("fleet.git", userinfo=True), cache).sync()
    assert PASSWORD not in (cache / "config").read_text()
    assert stat.S_IMODE((cache / "config").stat().st_mode) == 0o600
