"""The daemon's own commits are signed with its SSH key, and verification trusts no author
line: real ssh-keygen keys, real Git repositories, ``git verify-commit`` as the judge of
the signatures the daemon makes.

The probe of issue #14 item 7: an unsigned commit authored with the daemon's own email on
top of a signed human commit used to pass ``verify: ssh`` (History looked past the
operator's commits by email). It is refused now, with a reason that says so.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.commits import head_commit
from reconciler.adapters.git.history import History
from reconciler.adapters.git.progress import GitProgressStore
from reconciler.adapters.git.remote import RemoteRepo
from reconciler.adapters.git.revert import LocalGit
from reconciler.adapters.git.sign import Signer
from reconciler.adapters.git.signing import signed_by_daemon
from reconciler.adapters.git.status import STATUS_TRAILER, StatusWriter
from reconciler.adapters.git.tree import GitTreeSource
from reconciler.core.loader import load_repository
from reconciler.core.model import DesiredState
from tests.integration.signing.helpers import DAEMON, Keys, commit, git, git_verifies

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"
REF = "refs/heads/main"
ALL = ["canary", "euw1-a", "euw1-b", "euw1-c", "use1-a", "use1-b", "use1-c"]


def _work(tmp_path: Path, keys: Keys) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit(work, {"reconciler.yaml": "kind: Fleet\n", "releases/api.yaml": "v: 1.0.0\n",
                   "status/cells/a.yaml": "cell: a\n"}, "fleet", keys.human)
    return work


def _bare(work: Path, name: str = "fleet.git") -> Path:
    bare = work.parent / name
    git(work.parent, "clone", "-q", "--bare", str(work), str(bare))
    return bare


# ------------------------------------------------------------------- (a) the probe


@pytest.mark.parametrize("path", ["releases/api.yaml", "status/cells/a.yaml"],
                         ids=["revert-like", "status-only"])
def test_unsigned_commit_with_the_daemons_email_is_refused(tmp_path: Path, keys: Keys,
                                                           path: str) -> None:
    """The probe: on today's main this revision was accepted (History looked past commits
    authored by the operator's email to the signed human commit below)."""
    work = _work(tmp_path, keys)
    forged = commit(work, {path: "v: 6.6.6\n"},
                     f"Roll back api\n\n{STATUS_TRAILER}\nReconciler-Rollback-Of: x\n",
                     who=DAEMON)
    history = History(_bare(work), DAEMON[1], keys.policy())
    desired = history.desired_head(forged)
    assert desired == forged  # not skipped as our status: it lacks our signature
    reason = history.verify(desired)
    assert f"revision {forged[:12]} is not signed" in reason
    assert f"authored as {DAEMON[1]}" in reason and "authorship is not identity" in reason


def test_commit_with_the_daemons_email_signed_by_another_key_is_refused(
        tmp_path: Path, keys: Keys) -> None:
    work = _work(tmp_path, keys)
    forged = commit(work, {"releases/api.yaml": "v: 6.6.6\n"}, "bump", keys.stranger,
                     who=DAEMON)
    history = History(_bare(work), DAEMON[1], keys.policy())
    assert "signed by a key not in" in history.verify(history.desired_head(forged))


def test_our_signed_status_on_a_forged_commit_does_not_launder_it(tmp_path: Path,
                                                                  keys: Keys) -> None:
    """The daemon writes status (signed) on top of whatever it fetched — a refused commit
    included; verification looks past our commit and still refuses what is below."""
    work = _work(tmp_path, keys)
    forged = commit(work, {"releases/api.yaml": "v: 6.6.6\n"}, "sneaky", who=DAEMON)
    bare = _bare(work)
    repo = pygit2.Repository(str(bare))
    ours = StatusWriter(repo, REF, DAEMON, signer=keys.signer()).write(
        {"status/cells/a.yaml": {"cell": "a", "error": "refused"}}, "rejected")
    assert ours is not None and signed_by_daemon(repo, ours, keys.policy())
    history = History(bare, DAEMON[1], keys.policy())
    assert history.desired_head(ours) == forged
    reason = history.verify(ours)  # even asked about our own commit directly
    assert f"revision {forged[:12]} is not signed" in reason
    assert f"{ours[:12]} rests on it through 1 commit(s) signed by the daemon" in reason


# ----------------------------------------------- (b) our own commits are signed and verify


def test_status_and_progress_commits_are_signed_and_verify(tmp_path: Path,
                                                           keys: Keys) -> None:
    work = _work(tmp_path, keys)
    human = git(work, "rev-parse", "HEAD").stdout.strip()
    bare = _bare(work)
    repo, signer = pygit2.Repository(str(bare)), keys.signer()
    status = StatusWriter(repo, REF, DAEMON, signer=signer).write(
        {"status/cells/a.yaml": {"cell": "a", "health": "Healthy"}}, "tick")
    GitProgressStore(repo, REF, DAEMON, signer=signer).start_bake(
        "api", "canary", "1.0.0", datetime(2026, 1, 1, tzinfo=UTC))
    progress = str(head_commit(repo, REF).id)  # type: ignore[union-attr]
    assert status is not None and progress != status
    for sha in (status, progress):
        report = git_verifies(bare, sha, keys.daemon_signers)
        assert f'Good "git" signature for {DAEMON[1]}' in report, sha
        assert git_verifies(bare, sha, keys.allowed) == ""  # not the human's key
    history = History(bare, DAEMON[1], keys.policy())
    assert history.desired_head(progress) == human  # our status: no new plan
    assert history.verify(human) == "" and history.verify(progress) == ""


def _load(repo: Path) -> DesiredState:
    desired = load_repository(GitTreeSource(pygit2.Repository(str(repo)))).desired
    assert desired is not None
    return desired


def test_revert_commit_is_signed_and_verifies(tmp_path: Path, keys: Keys) -> None:
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {}, "fleet at 1.5.0", keys.human)
    rel = repo / "releases" / "api.yaml"
    bump = commit(repo, {"releases/api.yaml": rel.read_text().replace(
        "version: 1.5.0", "version: 1.6.0")}, "bump api to 1.6.0", keys.human)
    local = LocalGit(str(repo), *DAEMON, signer=keys.signer())
    revert = local.revert(_load(repo), "api", ALL, "1.6.0", "canary degraded")
    assert git(repo, "rev-parse", "HEAD").stdout.strip() == revert
    assert git(repo, "status", "--porcelain").stdout == ""  # checked out as before
    assert "version: 1.5.0" in rel.read_text()
    assert f'Good "git" signature for {DAEMON[1]}' in git_verifies(
        repo, revert, keys.daemon_signers)
    history = History(repo, DAEMON[1], keys.policy())
    assert history.desired_head(revert) == revert  # a revert changes the desired state
    assert history.verify(revert) == ""  # ours, resting on the human's signed bump
    unsigned = LocalGit(str(repo), *DAEMON)  # what the daemon did before: refused now
    commit(repo, {"releases/api.yaml": rel.read_text().replace(
        "version: 1.5.0", "version: 1.7.0")}, "bump api to 1.7.0", keys.human)
    old = unsigned.revert(_load(repo), "api", ALL, "1.7.0", "canary degraded")
    assert "is not signed" in history.verify(old)
    assert bump != old


def test_commits_replayed_onto_a_moved_remote_are_signed(tmp_path: Path,
                                                         keys: Keys) -> None:
    work = _work(tmp_path, keys)
    fleet = _bare(work)
    remote = RemoteRepo(str(fleet), tmp_path / "cache", author=DAEMON,
                        signer=keys.signer())
    remote.sync()
    written = StatusWriter(remote.repo, remote.local_ref, DAEMON, signer=keys.signer()
                           ).write({"status/cells/a.yaml": {"cell": "a", "n": 1}}, "tick")
    assert written is not None
    git(work, "remote", "add", "origin", str(fleet))
    moved = commit(work, {"releases/api.yaml": "v: 1.1.0\n"}, "bump", keys.human)
    git(work, "push", "-q", "origin", "main")
    assert remote.push() is True
    head = git(fleet, "rev-parse", "main").stdout.strip()
    assert head != written  # replayed onto the human's bump
    assert git(fleet, "rev-parse", "main^").stdout.strip() == moved
    assert f'Good "git" signature for {DAEMON[1]}' in git_verifies(
        fleet, head, keys.daemon_signers)
    history = History(fleet, DAEMON[1], keys.policy())
    assert history.desired_head(head) == moved and history.verify(head) == ""


# --------------------------------------- (c) a human-signed bump under our signed commits


def test_signed_bump_under_our_signed_status_is_accepted(tmp_path: Path,
                                                         keys: Keys) -> None:
    work = _work(tmp_path, keys)
    bump = commit(work, {"releases/api.yaml": "v: 1.1.0\n"}, "bump", keys.human)
    bare = _bare(work)
    repo = pygit2.Repository(str(bare))
    writer = StatusWriter(repo, REF, DAEMON, signer=keys.signer())
    for n in range(3):
        assert writer.write({"status/cells/a.yaml": {"cell": "a", "tick": n}}, f"t{n}")
    head = str(head_commit(repo, REF).id)  # type: ignore[union-attr]
    history = History(bare, DAEMON[1], keys.policy())
    assert history.desired_head(head) == bump
    assert history.verify(bump) == "" and history.verify(head) == ""


def test_unsigned_bump_under_our_signed_status_is_refused(tmp_path: Path,
                                                          keys: Keys) -> None:
    work = _work(tmp_path, keys)
    bump = commit(work, {"releases/api.yaml": "v: 1.1.0\n"}, "bump")
    bare = _bare(work)
    repo = pygit2.Repository(str(bare))
    StatusWriter(repo, REF, DAEMON, signer=keys.signer()).write(
        {"status/cells/a.yaml": {"cell": "a", "tick": 1}}, "t")
    history = History(bare, DAEMON[1], keys.policy())
    head = str(head_commit(repo, REF).id)  # type: ignore[union-attr]
    assert history.desired_head(head) == bump
    assert f"revision {bump[:12]} is not signed" in history.verify(bump)


# --------------------------------------------------------------------- the signer itself


def test_signer_refuses_an_unusable_key(tmp_path: Path, keys: Keys) -> None:
    loose = tmp_path / "loose"
    shutil.copy(keys.daemon, loose)
    loose.chmod(0o644)  # ssh-keygen ignores a private key others can read
    with pytest.raises(PermanentError, match="not a usable SSH private key"):
        Signer(loose)
    with pytest.raises(PermanentError, match="not a usable SSH private key"):
        Signer(tmp_path / "missing")
