"""Walking the followed branch's history: which commit is the desired state, and whether
it is signed by an allowed key.

Owns: skipping the daemon's own status-only commits (they never cause a new plan) and
checking the signature of the human commit a revision rests on (our revert commits are
not signed; the commit they build on is checked).
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.signing import SigningPolicy, verify
from reconciler.adapters.git.status import own_status_only


class History:
    """The history of the bare cache at ``cache`` as the daemon reads it."""

    def __init__(self, cache: Path, author_email: str,
                 policy: SigningPolicy | None = None) -> None:
        self.cache = cache
        self.author_email = author_email
        self.policy = policy

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cache))

    def desired_head(self, head: str) -> str:
        """The newest commit from ``head`` back that is not only our own status."""
        repo = self.repo
        commit = repo[head]
        while isinstance(commit, pygit2.Commit) and len(commit.parents) == 1 and \
                own_status_only(repo, str(commit.parents[0].id), str(commit.id),
                                self.author_email):
            commit = commit.parents[0]
        return str(commit.id)

    def verify(self, revision: str) -> str:
        """Why ``revision`` is refused ("" when no policy is set or it is signed)."""
        if self.policy is None:
            return ""
        repo = self.repo
        target, commit = revision, repo[revision]
        while isinstance(commit, pygit2.Commit) and \
                commit.author.email == self.author_email and commit.parents:
            commit = commit.parents[0]
            target = str(commit.id)
        try:
            verify(repo, target, self.policy)
        except PermanentError as e:
            return str(e)
        return ""
