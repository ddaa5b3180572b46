"""The daemon's Git remote against real servers: clone, fetch, push, recover from a
concurrent pusher, keep unpushed commits across restarts and outages, and fail clearly
on bad credentials and unknown host keys — without ever printing a secret."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.gitcommit import commit_files, head_commit, read_file
from reconciler.adapters.gitremote import RebaseConflict, RemoteAuth, RemoteRepo
from reconciler.testing.gitserver import HttpGitServer, SshGitServer, git

from .conftest import PASSWORD, USER

pytestmark = pytest.mark.git
BOT = pygit2.Signature("reconciler", "bot@example.test")


def _pw(tmp_path: Path, value: str = PASSWORD) -> str:
    f = tmp_path / "git-password"
    f.write_text(value + "\n")
    return str(f)


def _http(server: HttpGitServer, tmp_path: Path, name: str = "cache") -> RemoteRepo:
    auth = RemoteAuth(username=USER, password_file=_pw(tmp_path))
    return RemoteRepo(server.url("fleet.git"), tmp_path / name, auth=auth)


def _ssh(server: SshGitServer, tmp_path: Path, known_hosts: Path | None = None) -> RemoteRepo:
    auth = RemoteAuth(ssh_private_key=str(server.client_key),
                      known_hosts=str(known_hosts or server.known_hosts))
    return RemoteRepo(server.url("fleet.git"), tmp_path / "ssh-cache", auth=auth)


def _status(remote: RemoteRepo, path: str, text: str) -> str:
    sha = commit_files(remote.repo, remote.local_ref, {path: text.encode()}, f"status {path}",
                       BOT)
    assert sha is not None
    return sha


def _remote_log(root: Path) -> list[str]:
    return git(root / "fleet.git", "log", "--format=%s", "main").splitlines()


def _other_push(root: Path, tmp_path: Path, path: str, text: str) -> None:
    work = tmp_path / "other"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(root / "fleet.git"), str(work))
    git(work, "pull", "-q", "--rebase")
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", path)
    git(work, "commit", "-q", "-m", f"human edits {path}")
    git(work, "push", "-q", "origin", "main")


def test_http_clone_fetch_push(http_server: HttpGitServer, root: Path, tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    first = remote.sync()
    assert read_file(remote.repo, head_commit(remote.repo, remote.local_ref),
                     "releases/api.yaml") == b"version: 1.0.0\n"
    _status(remote, "status/desired.yaml", "valid: true\n")
    assert remote.pending() == 1
    assert remote.push() is True
    assert remote.pending() == 0
    assert _remote_log(root)[0] == "status status/desired.yaml"
    _other_push(root, tmp_path, "releases/api.yaml", "version: 1.1.0\n")
    head = remote.sync()
    assert head != first
    assert read_file(remote.repo, head_commit(remote.repo, remote.local_ref),
                     "releases/api.yaml") == b"version: 1.1.0\n"
    assert http_server.requests > 0


def test_ssh_clone_fetch_push(ssh_server: SshGitServer, root: Path, tmp_path: Path) -> None:
    remote = _ssh(ssh_server, tmp_path)
    remote.sync()
    _status(remote, "status/cells/a.yaml", "cell: a\n")
    assert remote.push() is True
    assert _remote_log(root)[0] == "status status/cells/a.yaml"


def test_concurrent_pusher_loses_nothing(http_server: HttpGitServer, root: Path,
                                         tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _status(remote, "status/cells/a.yaml", "cell: a\n")
    _other_push(root, tmp_path, "releases/api.yaml", "version: 2.0.0\n")
    assert remote.push() is True  # rejected once as non-fast-forward, replayed, pushed
    log = _remote_log(root)
    assert log[:2] == ["status status/cells/a.yaml", "human edits releases/api.yaml"]
    git(tmp_path / "other", "pull", "-q")
    assert (tmp_path / "other" / "status/cells/a.yaml").read_text() == "cell: a\n"
    assert (tmp_path / "other" / "releases/api.yaml").read_text() == "version: 2.0.0\n"


def test_status_conflict_keeps_ours(http_server: HttpGitServer, root: Path,
                                    tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _status(remote, "status/desired.yaml", "valid: true\n")
    _other_push(root, tmp_path, "status/desired.yaml", "valid: maybe\n")
    assert remote.push() is True
    git(tmp_path / "other", "pull", "-q")
    assert (tmp_path / "other" / "status/desired.yaml").read_text() == "valid: true\n"


def test_conflict_outside_status_is_refused(http_server: HttpGitServer, root: Path,
                                            tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _status(remote, "releases/api.yaml", "version: 0.9.0\n")  # a revert, say
    _other_push(root, tmp_path, "releases/api.yaml", "version: 3.0.0\n")
    with pytest.raises(RebaseConflict, match=r"releases/api\.yaml"):
        remote.push()
    assert remote.pending() == 1  # nothing dropped
    assert _remote_log(root)[0] == "human edits releases/api.yaml"


def test_queue_survives_restart_and_outage(root: Path, tmp_path: Path) -> None:
    server = HttpGitServer(root, USER, PASSWORD).start()
    port = server.port
    remote = _http(server, tmp_path)
    remote.sync()
    server.stop()
    _status(remote, "status/cells/b.yaml", "cell: b\n")
    with pytest.raises(TemporaryError):
        remote.push(max_attempts=1)
    again = RemoteRepo(remote.url, remote.cache_dir, auth=remote.auth)  # a restarted daemon
    assert again.pending() == 1
    server = HttpGitServer(root, USER, PASSWORD, port=port).start()
    try:
        again.sync()
        assert again.push() is True
    finally:
        server.stop()
    assert _remote_log(root)[0] == "status status/cells/b.yaml"


def test_wrong_password_is_permanent_and_secret_free(http_server: HttpGitServer,
                                                    tmp_path: Path) -> None:
    wrong = "not-the-password-xyz"
    auth = RemoteAuth(username=USER, password_file=_pw(tmp_path, wrong))
    url = http_server.url("fleet.git").replace("http://", f"http://{USER}:{wrong}@")
    remote = RemoteRepo(url, tmp_path / "c", auth=auth)
    with pytest.raises(PermanentError) as e:
        remote.sync()
    text = str(e.value)
    assert "authentication failed" in text and "127.0.0.1" in text
    assert wrong not in text and PASSWORD not in text


def test_no_credentials_is_permanent(http_server: HttpGitServer, tmp_path: Path) -> None:
    remote = RemoteRepo(http_server.url("fleet.git"), tmp_path / "c")
    with pytest.raises(PermanentError, match="authentication failed"):
        remote.sync()


@pytest.mark.parametrize("hosts", ["empty", "other-key"])
def test_unknown_host_key_is_permanent(ssh_server: SshGitServer, tmp_path: Path,
                                       hosts: str) -> None:
    known = tmp_path / "known_hosts"
    if hosts == "empty":
        known.write_text("")
    else:
        import subprocess

        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / "k")], check=True)
        known.write_text(f"[127.0.0.1]:{ssh_server.port} {(tmp_path / 'k.pub').read_text()}")
    with pytest.raises(PermanentError, match="host key"):
        _ssh(ssh_server, tmp_path, known).sync()


def test_revert_commit_pushed(http_server: HttpGitServer, root: Path, tmp_path: Path) -> None:
    from reconciler.adapters.gitwrite import LocalGit

    _other_push(root, tmp_path, "releases/api.yaml", "spec:\n  versions:\n"
                "    - groups: [canary, eu]\n      version: 1.0.0\n")
    _other_push(root, tmp_path, "releases/api.yaml", "spec:\n  versions:\n"
                "    - groups: [canary, eu]\n      version: 1.1.0\n")
    remote = _http(http_server, tmp_path)
    remote.sync()
    _status(remote, "status/desired.yaml", "valid: true\n")  # status after the bump
    git_ = LocalGit(str(remote.cache_dir), "reconciler", "bot@example.test",
                    ref=remote.local_ref)
    sha = git_.revert(None, "api", ["canary", "eu"], "1.1.0",  # type: ignore[arg-type]
                      "alarm 'errors' fired on canary-01 = 0.05 > 0.02 after 1.1.0")
    assert remote.push() is True
    message = git(root / "fleet.git", "log", "-1", "--format=%B", "main")
    assert git(root / "fleet.git", "rev-parse", "main") == sha
    assert "alarm 'errors' fired" in message and "Reconciler-Rollback-Of: " in message
    assert "version: 1.0.0" in git(root / "fleet.git", "show", "main:releases/api.yaml")
