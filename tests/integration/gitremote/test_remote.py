"""The daemon's Git remote against real servers: clone, fetch, push, recover from a
concurrent pusher, keep unpushed commits across restarts and outages, and fail clearly
on bad credentials and unknown host keys — without ever printing a secret."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.remote import RemoteAuth, RemoteRepo
from reconciler.testing.gitserver import HttpGitServer, SshGitServer, git

from .conftest import PASSWORD, USER

pytestmark = pytest.mark.git
BOT = pygit2.Signature("reconciler", "bot@example.test", 1_700_000_000, 0)
TRAILER = "Reconciler-Status: true"
Factory = Callable[[str], RemoteRepo]


def _pw(tmp_path: Path, value: str = PASSWORD) -> str:
    f = tmp_path / "git-password"
    f.write_text(value + "\n")
    return str(f)


def _http(server: HttpGitServer, tmp_path: Path, name: str = "cache") -> RemoteRepo:
    auth = RemoteAuth(username=USER, password_file=_pw(tmp_path))
    return RemoteRepo(server.url("fleet.git"), tmp_path / name, auth=auth)


def _ssh(server: SshGitServer, tmp_path: Path, known_hosts: Path | None = None,
         key: Path | None = None) -> RemoteRepo:
    auth = RemoteAuth(ssh_private_key=str(key or server.client_key),
                      known_hosts=str(known_hosts or server.known_hosts))
    return RemoteRepo(server.url("fleet.git"), tmp_path / "ssh-cache", auth=auth)


@pytest.fixture(params=["http", "ssh"])
def make_remote(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Builds a RemoteRepo over HTTP (basic auth) or SSH (key + known_hosts)."""
    if request.param == "http":
        server = request.getfixturevalue("http_server")
        return lambda name: _http(server, tmp_path, name)
    server = request.getfixturevalue("ssh_server")
    return lambda name: RemoteRepo(server.url("fleet.git"), tmp_path / name, auth=RemoteAuth(
        ssh_private_key=str(server.client_key), known_hosts=str(server.known_hosts)))


def _commit(remote: RemoteRepo, path: str, text: str) -> str:
    """A commit made in memory on the cache's local branch, as the daemon makes them."""
    sha = commit_files(remote.repo, remote.local_ref, {path: text.encode()},
                       f"status {path}\n\n{TRAILER}\n", BOT)
    assert sha is not None
    return sha


def _remote_log(root: Path) -> list[str]:
    return git(root / "fleet.git", "log", "--format=%s", "main").splitlines()


def _remote_file(root: Path, path: str) -> str:
    return git(root / "fleet.git", "show", f"main:{path}")


def _other_push(root: Path, tmp_path: Path, path: str, text: str) -> None:
    """A human pushes with the git CLI from a clone of their own."""
    work = tmp_path / "other"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(root / "fleet.git"), str(work))
    git(work, "pull", "-q", "--rebase")
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", path)
    git(work, "commit", "-q", "-m", f"human edits {path}")
    git(work, "push", "-q", "origin", "main")


def _secret_free(e: BaseException, *secrets: str) -> str:
    text = f"{e} {e!r}"
    for secret in (PASSWORD, *secrets):
        assert secret not in text
    return str(e)


# ---------------------------------------------------------------- clone, fetch, push


def test_clone_fetch_push(make_remote: Factory, root: Path, tmp_path: Path) -> None:
    remote = make_remote("cache")
    first = remote.sync()
    assert remote.repo.is_bare
    assert read_file(remote.repo, head_commit(remote.repo, remote.local_ref),
                     "releases/api.yaml") == b"version: 1.0.0\n"
    assert remote.push() is False  # nothing of ours yet
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.pending() == 1
    assert remote.push() is True
    assert remote.pending() == 0
    assert _remote_log(root)[0] == "status status/desired.yaml"
    _other_push(root, tmp_path, "releases/api.yaml", "version: 1.1.0\n")
    head = remote.sync()
    assert head != first
    assert head == git(root / "fleet.git", "rev-parse", "main")
    assert read_file(remote.repo, head_commit(remote.repo, remote.local_ref),
                     "releases/api.yaml") == b"version: 1.1.0\n"


def test_http_server_saw_authenticated_requests(http_server: HttpGitServer,
                                                tmp_path: Path) -> None:
    _http(http_server, tmp_path).sync()
    assert http_server.requests > 0


@pytest.mark.parametrize("form", ["file-url", "path"])
def test_local_remotes(root: Path, tmp_path: Path, form: str) -> None:
    bare = root / "fleet.git"
    url = bare.as_uri() if form == "file-url" else str(bare)
    remote = RemoteRepo(url, tmp_path / "cache")
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.push() is True
    assert _remote_file(root, "status/desired.yaml") == "valid: true"


def test_missing_branch_is_permanent(http_server: HttpGitServer, tmp_path: Path) -> None:
    auth = RemoteAuth(username=USER, password_file=_pw(tmp_path))
    remote = RemoteRepo(http_server.url("fleet.git"), tmp_path / "c", branch="nope", auth=auth)
    with pytest.raises(PermanentError, match="branch nope not found"):
        remote.sync()


# ---------------------------------------------------------------- a moving remote


def test_concurrent_pusher_loses_nothing(make_remote: Factory, root: Path, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    remote = make_remote("cache")
    remote.sync()
    ours = _commit(remote, "status/cells/a.yaml", "cell: a\n")
    _other_push(root, tmp_path, "releases/api.yaml", "version: 2.0.0\n")
    with caplog.at_level(logging.INFO, logger="reconciler.git"):
        assert remote.push() is True
    assert "rejected: the remote moved" in caplog.text  # the non-fast-forward path ran
    assert _remote_log(root)[:2] == ["status status/cells/a.yaml",
                                     "human edits releases/api.yaml"]
    assert _remote_file(root, "status/cells/a.yaml") == "cell: a"
    assert _remote_file(root, "releases/api.yaml") == "version: 2.0.0"
    replayed = git(root / "fleet.git", "log", "-1", "--format=%H%n%an <%ae> %at%n%B", "main")
    sha, author, message = replayed.split("\n", 2)
    assert sha != ours  # rebased onto the human's commit ...
    assert author == "reconciler <bot@example.test> 1700000000"  # ... as the same author
    assert message.strip().endswith(TRAILER)
    assert remote.pending() == 0


def test_status_conflict_keeps_ours(http_server: HttpGitServer, root: Path,
                                    tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    _other_push(root, tmp_path, "status/desired.yaml", "valid: maybe\n")
    assert remote.push() is True
    assert _remote_file(root, "status/desired.yaml") == "valid: true"
    assert _remote_log(root)[1] == "human edits status/desired.yaml"


def test_conflict_outside_status_is_set_aside(http_server: HttpGitServer, root: Path,
                                             tmp_path: Path) -> None:
    """Never a crash loop: our commit is kept under a ref for a person, not replayed."""
    remote = _http(http_server, tmp_path)
    remote.sync()
    ours = _commit(remote, "releases/api.yaml", "version: 0.9.0\n")  # a revert, say
    _other_push(root, tmp_path, "releases/api.yaml", "version: 3.0.0\n")
    remote.push(backoff=0.01)
    repo = remote.repo
    kept = [str(repo.references[n].target) for n in repo.references
            if n.startswith("refs/reconciler/set-aside/")]
    assert kept == [ours]
    assert remote.pending() == 0
    assert remote.sync() == git(root / "fleet.git", "rev-parse", "main")
    assert _remote_log(root)[0] == "human edits releases/api.yaml"


def test_force_pushed_remote_is_not_undone(http_server: HttpGitServer, root: Path,
                                           tmp_path: Path) -> None:
    _other_push(root, tmp_path, "releases/api.yaml", "version: 6.6.6\n")  # a mistake
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    work = tmp_path / "other"
    git(work, "reset", "-q", "--hard", "HEAD~1")
    git(work, "push", "-q", "--force", "origin", "main")  # the mistake is taken back
    assert remote.push() is True
    assert _remote_log(root) == ["status status/desired.yaml", "seed"]
    assert _remote_file(root, "releases/api.yaml") == "version: 1.0.0"


def test_change_already_on_the_remote_is_not_repeated(http_server: HttpGitServer,
                                                      root: Path, tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/cells/a.yaml", "cell: a\n")
    _other_push(root, tmp_path, "status/cells/a.yaml", "cell: a\n")  # the same change
    assert remote.sync() == git(root / "fleet.git", "rev-parse", "main")
    assert remote.pending() == 0
    assert remote.push() is False


# ---------------------------------------------------------------- the persisted queue


def test_queue_survives_restart_and_outage(root: Path, tmp_path: Path) -> None:
    server = HttpGitServer(root, USER, PASSWORD).start()
    port = server.port
    url = server.url("fleet.git", userinfo=True)
    remote = RemoteRepo(url, tmp_path / "cache")
    remote.sync()
    server.stop()
    _commit(remote, "status/cells/b.yaml", "cell: b\n")
    with pytest.raises(TemporaryError) as e:
        remote.push(max_attempts=1)
    assert "127.0.0.1" in _secret_free(e.value)
    assert e.value.retry_after > 0
    again = RemoteRepo(url, remote.cache_dir)  # a restarted daemon
    assert again.pending() == 1
    server = HttpGitServer(root, USER, PASSWORD, port=port).start()
    try:
        again.sync()
        assert again.push() is True
    finally:
        server.stop()
    assert _remote_log(root)[0] == "status status/cells/b.yaml"


_KILLED_WRITER = """
import os, signal, sys
import pygit2
from reconciler.adapters.git.commits import commit_files
from reconciler.adapters.git.remote import RemoteRepo
remote = RemoteRepo(sys.argv[1], sys.argv[2])
sig = pygit2.Signature("reconciler", "bot@example.test")
for i in range(3):
    commit_files(remote.repo, remote.local_ref, {f"status/k{i}.yaml": b"x"}, f"k{i}", sig)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_queue_survives_kill_9(http_server: HttpGitServer, root: Path, tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    remote.sync()
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, remote.url,
                           str(remote.cache_dir)], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert remote.pending() == 3
    assert remote.push() is True
    assert _remote_log(root)[:3] == ["k2", "k1", "k0"]


def test_push_not_recorded_before_a_crash_is_not_repeated(http_server: HttpGitServer,
                                                          root: Path, tmp_path: Path) -> None:
    remote = _http(http_server, tmp_path)
    before = remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")
    assert remote.push() is True
    remote.repo.references.create(remote.tracking_ref, pygit2.Oid(hex=before), force=True)
    assert remote.pending() == 1  # as if killed between the push and recording it
    again = RemoteRepo(remote.url, remote.cache_dir, auth=remote.auth)
    assert again.sync() == git(root / "fleet.git", "rev-parse", "main")
    assert again.pending() == 0
    assert _remote_log(root).count("status status/desired.yaml") == 1


def test_backlog_over_the_limit_is_loud_and_kept(root: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server = HttpGitServer(root, USER, PASSWORD).start()
    port = server.port
    remote = _http(server, tmp_path)
    remote.max_pending = 2
    remote.sync()
    server.stop()
    for i in range(3):
        _commit(remote, f"status/cells/{i}.yaml", f"n: {i}\n")
    with caplog.at_level(logging.ERROR, logger="reconciler.git"), \
            pytest.raises(TemporaryError, match="3 unpushed commits, over the limit of 2"):
        remote.push()
    assert "over the limit of 2" in caplog.text
    assert remote.pending() == 3
    server = HttpGitServer(root, USER, PASSWORD, port=port).start()
    try:
        assert remote.push() is True
    finally:
        server.stop()
    assert remote.pending() == 0
    assert len(_remote_log(root)) == 4


# ---------------------------------------------------------------- refusals


def test_wrong_password_is_permanent_and_secret_free(http_server: HttpGitServer,
                                                    tmp_path: Path) -> None:
    wrong = "not-the-password-xyz"
    auth = RemoteAuth(username=USER, password_file=_pw(tmp_path, wrong))
    url = http_server.url("fleet.git").replace("http://", f"http://{USER}:{wrong}@")
    remote = RemoteRepo(url, tmp_path / "c", auth=auth)
    with pytest.raises(PermanentError) as e:
        remote.sync()
    text = _secret_free(e.value, wrong)
    assert f"authentication failed for {http_server.url('fleet.git')}" in text
    assert wrong not in repr(remote) and wrong not in repr(auth)


def test_password_from_env(http_server: HttpGitServer, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    auth = RemoteAuth(username=USER, password_env="TEST_GIT_TOKEN")
    remote = RemoteRepo(http_server.url("fleet.git"), tmp_path / "c", auth=auth)
    with pytest.raises(PermanentError, match="TEST_GIT_TOKEN"):
        remote.sync()
    monkeypatch.setenv("TEST_GIT_TOKEN", PASSWORD)
    assert remote.sync()


def test_no_credentials_is_permanent(http_server: HttpGitServer, tmp_path: Path) -> None:
    remote = RemoteRepo(http_server.url("fleet.git"), tmp_path / "c")
    with pytest.raises(PermanentError, match="authentication failed"):
        remote.sync()


def test_wrong_ssh_key_is_permanent(ssh_server: SshGitServer, tmp_path: Path) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(PermanentError, match=r"authentication failed for ssh://127\.0\.0\.1"):
        _ssh(ssh_server, tmp_path, key=key).sync()


@pytest.mark.parametrize("hosts", ["empty", "other-host", "other-key"])
def test_unknown_host_key_is_permanent(ssh_server: SshGitServer, tmp_path: Path,
                                       hosts: str) -> None:
    known = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "k")], check=True)
    stranger = (tmp_path / "k.pub").read_text()
    theirs = ssh_server.known_hosts.read_text().split(" ", 1)[1]
    known.write_text({"empty": "",
                      "other-host": f"[127.0.0.1]:{ssh_server.port + 1} {theirs}",
                      "other-key": f"[127.0.0.1]:{ssh_server.port} {stranger}"}[hosts])
    wording = "does not match" if hosts == "other-key" else "is unknown"
    with pytest.raises(PermanentError, match=rf"host key of \[127\.0\.0\.1\]:\d+ {wording}"):
        _ssh(ssh_server, tmp_path, known).sync()
    assert not (tmp_path / "ssh-cache").exists()


def test_hashed_known_hosts_entry_is_accepted(ssh_server: SshGitServer,
                                              tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(ssh_server.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True,
                   capture_output=True)
    assert known.read_text().startswith("|1|")
    assert _ssh(ssh_server, tmp_path, known).sync()


def test_untrusted_tls_certificate_is_permanent(root: Path, tmp_path: Path) -> None:
    with HttpGitServer(root, USER, PASSWORD, tls=True) as server:
        remote = _http(server, tmp_path)
        with pytest.raises(PermanentError, match=r"TLS certificate of 127\.0\.0\.1 is not trusted"):
            remote.sync()
        assert server.requests == 0


# ---------------------------------------------------------------- with the revert writer


def test_revert_commit_pushed(http_server: HttpGitServer, root: Path, tmp_path: Path) -> None:
    from reconciler.adapters.git.revert import LocalGit

    _other_push(root, tmp_path, "releases/api.yaml", "spec:\n  versions:\n"
                "    - groups: [canary, eu]\n      version: 1.0.0\n")
    _other_push(root, tmp_path, "releases/api.yaml", "spec:\n  versions:\n"
                "    - groups: [canary, eu]\n      version: 1.1.0\n")
    remote = _http(http_server, tmp_path)
    remote.sync()
    _commit(remote, "status/desired.yaml", "valid: true\n")  # status after the bump
    git_ = LocalGit(str(remote.cache_dir), "reconciler", "bot@example.test",
                    ref=remote.local_ref)
    sha = git_.revert(None, "api", ["canary", "eu"], "1.1.0",  # type: ignore[arg-type]
                      "alarm 'errors' fired on canary-01 = 0.05 > 0.02 after 1.1.0")
    assert remote.push() is True
    message = git(root / "fleet.git", "log", "-1", "--format=%B", "main")
    assert git(root / "fleet.git", "rev-parse", "main") == sha
    assert "alarm 'errors' fired" in message and "Reconciler-Rollback-Of: " in message
    assert "version: 1.0.0" in _remote_file(root, "releases/api.yaml")


def test_environment_is_untouched(ssh_server: SshGitServer, tmp_path: Path) -> None:
    home = pygit2.settings.homedir
    _ssh(ssh_server, tmp_path).sync()
    assert pygit2.settings.homedir == home
    assert os.environ.get("HOME") == str(Path.home())


def test_several_writers_push_at_once_and_lose_nothing(http_server: HttpGitServer,
                                                       root: Path, tmp_path: Path) -> None:
    """Sharded replicas: each its own cache, each its own cells' status files, pushing
    at the same moment; every push lands (a lost race for the branch's lock on the
    server is the remote moving, not a refusal), nothing is forced or lost."""
    remotes = [_http(http_server, tmp_path, f"cache-{i}") for i in range(3)]
    for r in remotes:
        r.sync()
    errors: list[BaseException] = []

    def write(i: int, r: RemoteRepo, round_: int) -> None:
        try:
            _commit(r, f"status/cells/c{i}.yaml", f"cell: c{i}\nround: {round_}\n")
            r.push(max_attempts=8)
        except BaseException as e:  # reported below
            errors.append(e)

    for round_ in range(6):
        threads = [threading.Thread(target=write, args=(i, r, round_))
                   for i, r in enumerate(remotes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    for i in range(3):
        assert _remote_file(root, f"status/cells/c{i}.yaml") == f"cell: c{i}\nround: 5"
    assert all(r.pending() == 0 for r in remotes)
    assert len(_remote_log(root)) >= 3 * 6


def test_a_commit_made_while_fetching_is_not_dropped(http_server: HttpGitServer, root: Path,
                                                     tmp_path: Path) -> None:
    """Another thread (a revert, a progress record) commits while a sync fetches: the
    sync does not move the branch over it; the commit is replayed and pushed later."""
    remote = _http(http_server, tmp_path)
    remote.sync()
    _other_push(root, tmp_path, "releases/api.yaml", "version: 2.0.0\n")
    fetch = remote._fetch

    def fetch_while_committing() -> None:
        _commit(remote, "status/cells/late.yaml", "cell: late\n")
        fetch()

    remote._fetch = fetch_while_committing  # type: ignore[method-assign]
    remote.sync()
    remote._fetch = fetch  # type: ignore[method-assign]
    assert remote.pending() == 1
    assert remote.push() is True
    assert _remote_file(root, "status/cells/late.yaml") == "cell: late"
    assert _remote_file(root, "releases/api.yaml") == "version: 2.0.0"
