"""Walking the followed branch's history: which commit is the desired state, and whether
it is signed by an allowed key.

Owns: skipping the daemon's own status-only commits (they never cause a new plan) and
checking the signatures a desired revision rests on. Authorship is not identity: with a
signing policy no commit is trusted, skipped or looked past for its author line.

Status commits are recognised by the operator's author or the live Fleet's
``status.author``, the status trailer, and changes under the live status directory only;
with a signing policy they must also carry the daemon's own valid signature, or they are
not skipped (and so are verified, and refused unless an allowed key signed them).
Skipping them decides nothing but "no new plan": the revision skipped to is verified.

``verify`` looks past commits carrying the daemon's own valid signature (its status,
progress, revert and replayed commits: each changes only what the daemon wrote) down to
the first commit that does not; that commit must be signed by an allowed key. An
unsigned commit — whatever its author, the daemon's email included — is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.signing import SigningPolicy, signed_by_daemon, verify
from reconciler.adapters.git.status import own_status_only
from reconciler.core.statusdocs import DEFAULT_STATUS_DIR, StatusTarget

_CACHE_LIMIT = 10_000


class History:
    """The history of the bare cache at ``cache`` as the daemon reads it. ``author_email``
    is the operator's; ``target`` gives the live status directory and author (default:
    ``status/`` by the operator); ``policy`` (None: no verification) names the allowed
    keys and the daemon's own public key."""

    def __init__(self, cache: Path, author_email: str,
                 policy: SigningPolicy | None = None,
                 target: Callable[[], StatusTarget] | None = None) -> None:
        self.cache = cache
        self.author_email = author_email
        self.policy = policy
        self.target = target
        self._daemon: dict[str, bool] = {}  # commit → signed by the daemon (immutable)

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cache))

    def _ours(self) -> tuple[set[str], str]:
        """The emails of our status commits and the live status directory."""
        target = self.target() if self.target else None
        emails = {self.author_email, *(target.emails if target else ())}
        return emails, target.directory if target else DEFAULT_STATUS_DIR

    def _by_daemon(self, repo: pygit2.Repository, sha: str) -> bool:
        """``sha`` carries the daemon's own valid signature (cached: commits are
        immutable and the policy is fixed)."""
        if self.policy is None:
            return False
        known = self._daemon.get(sha)
        if known is None:
            if len(self._daemon) >= _CACHE_LIMIT:
                self._daemon.clear()
            known = self._daemon[sha] = signed_by_daemon(repo, sha, self.policy)
        return known

    def desired_head(self, head: str) -> str:
        """The newest commit from ``head`` back that is not only our own status (with a
        signing policy: our own status signed by the daemon)."""
        repo = self.repo
        emails, directory = self._ours()
        commit = repo[head]
        while isinstance(commit, pygit2.Commit) and len(commit.parents) == 1 and \
                own_status_only(repo, str(commit.parents[0].id), str(commit.id),
                                emails, directory) and \
                (self.policy is None or self._by_daemon(repo, str(commit.id))):
            commit = commit.parents[0]
        return str(commit.id)

    def verify(self, revision: str) -> str:
        """Why ``revision`` is refused ("" when no policy is set or it is signed).

        Looks past the daemon's own signed commits (status, progress, reverts) to the
        commit whose tree they rest on, which must be signed by an allowed key."""
        if self.policy is None:
            return ""
        repo = self.repo
        emails, _ = self._ours()
        target, commit, past = revision, repo[revision], 0
        while isinstance(commit, pygit2.Commit) and self._by_daemon(repo, target):
            if len(commit.parents) != 1:
                return (f"revision {target[:12]} is signed by the daemon but has "
                        f"{len(commit.parents)} parents; the daemon never makes such a "
                        "commit, and nothing under it is signed by an allowed key")
            commit, past = commit.parents[0], past + 1
            target = str(commit.id)
        try:
            verify(repo, target, self.policy)
        except PermanentError as e:
            return self._reason(str(e), commit, revision, past, emails)
        return ""

    def _reason(self, error: str, commit: object, revision: str, past: int,
                emails: set[str]) -> str:
        reason = error
        if isinstance(commit, pygit2.Commit) and commit.author.email in emails:
            reason += (f" (authored as {commit.author.email}, but not signed with the "
                       "daemon's key: authorship is not identity)")
        if past:
            reason += (f"; {revision[:12]} rests on it through {past} commit(s) signed "
                       "by the daemon")
        return reason
