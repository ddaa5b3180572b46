"""Walking the followed branch's history: which commit is the desired state, and whether
it is signed by an allowed key.

Owns: skipping the daemon's own status-only commits (they never cause a new plan) and
checking the signature of the human commit a revision rests on (our revert commits are
not signed; the commit they build on is checked).

Status commits are recognised by the operator's author or the live Fleet's
``status.author``, the status trailer, and changes under the live status directory only.
Skipping them decides nothing but "no new plan": the revision skipped to is verified.
``verify`` looks past the operator's commits (reverts) and such status-only commits,
never past a commit only because the Fleet's author wrote it: the repository chooses
that author, and a status-only commit leaves the desired state as its parent had it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.signing import SigningPolicy, verify
from reconciler.adapters.git.status import own_status_only
from reconciler.core.statusdocs import DEFAULT_STATUS_DIR, StatusTarget


class History:
    """The history of the bare cache at ``cache`` as the daemon reads it. ``author_email``
    is the operator's; ``target`` gives the live status directory and author (default:
    ``status/`` by the operator)."""

    def __init__(self, cache: Path, author_email: str,
                 policy: SigningPolicy | None = None,
                 target: Callable[[], StatusTarget] | None = None) -> None:
        self.cache = cache
        self.author_email = author_email
        self.policy = policy
        self.target = target

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cache))

    def _ours(self) -> tuple[set[str], str]:
        """The emails of our status commits and the live status directory."""
        target = self.target() if self.target else None
        emails = {self.author_email, *(target.emails if target else ())}
        return emails, target.directory if target else DEFAULT_STATUS_DIR

    def desired_head(self, head: str) -> str:
        """The newest commit from ``head`` back that is not only our own status."""
        repo = self.repo
        emails, directory = self._ours()
        commit = repo[head]
        while isinstance(commit, pygit2.Commit) and len(commit.parents) == 1 and \
                own_status_only(repo, str(commit.parents[0].id), str(commit.id),
                                emails, directory):
            commit = commit.parents[0]
        return str(commit.id)

    def verify(self, revision: str) -> str:
        """Why ``revision`` is refused ("" when no policy is set or it is signed).

        Looks past the operator's commits (reverts) and status-only commits to the
        commit whose tree they rest on: neither changes the desired state."""
        if self.policy is None:
            return ""
        repo = self.repo
        emails, directory = self._ours()
        target, commit = revision, repo[revision]
        while isinstance(commit, pygit2.Commit) and commit.parents and (
                commit.author.email == self.author_email or (
                    len(commit.parents) == 1 and own_status_only(
                        repo, str(commit.parents[0].id), str(commit.id), emails, directory))):
            commit = commit.parents[0]
            target = str(commit.id)
        try:
            verify(repo, target, self.policy)
        except PermanentError as e:
            return str(e)
        return ""
