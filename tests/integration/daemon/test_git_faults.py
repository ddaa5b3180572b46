"""Git faults against a real ``reconciler run`` (issue #14 item 10): a queued commit that
conflicts with a human edit on the remote is set aside and the daemon goes on (before:
it exited on every start), and the state it writes is private (0700 / 0600)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.git.commits import commit_files
from reconciler.adapters.git.remote import RemoteAuth, RemoteRepo
from reconciler.testing.gitserver import HttpGitServer, git

from .test_run import PASSWORD, USER, Daemon, _human_commit, _remote_status
from .test_run import server as server  # the fixture

pytestmark = pytest.mark.git
RELEASE = "releases/api.yaml"


def test_conflicting_queued_commit_does_not_stop_the_daemon(
        tmp_path: Path, server: HttpGitServer) -> None:
    root = server.root
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD)
    cache = tmp_path / "state" / "git"
    remote = RemoteRepo(server.url("fleet.git"), cache,
                        auth=RemoteAuth(username=USER, password_file=str(pw)))
    remote.sync()
    text = git(root / "fleet.git", "show", f"main:{RELEASE}")
    ours = commit_files(remote.repo, remote.local_ref, {RELEASE: (text + "\n# ours\n").encode()},
                        "revert api\n", pygit2.Signature("reconciler", "bot@example.test"))
    assert ours is not None  # queued, not pushed: the daemon was stopped here
    _human_commit(root, tmp_path, RELEASE, text + "\n# human\n")

    d = Daemon(tmp_path, server)
    try:
        d.wait_for(lambda: "set aside" in d.log.read_text(), "the set-aside error", 60)
        d.wait_for(lambda: _remote_status(root, "status/desired.yaml") is not None,
                   "a status commit after the set-aside", 60)
        time.sleep(0.5)
        assert d.proc.poll() is None
        line = next(x for x in d.lines() if "set aside" in str(x.get("message", x)))
        assert str(line.get("level", "")).lower().startswith("err")
        refs = git(cache, "for-each-ref", "--format=%(refname) %(objectname)",
                   "refs/reconciler/set-aside/").split()
        assert refs[1] == ours and refs[0].endswith(ours[:12])
        assert refs[0] in str(line)
        assert "# human" in git(root / "fleet.git", "show", f"main:{RELEASE}")
        state = tmp_path / "state"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((cache / "config").stat().st_mode) == 0o600
        lock = state / "leader.lock"
        if lock.exists():
            assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
