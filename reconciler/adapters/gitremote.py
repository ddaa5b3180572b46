"""The desired-state repository's remote: a bare cache, fetches and pushes, with pygit2.

Owns: cloning and fetching over ``file://``, local paths, HTTPS (basic auth or a token,
the secret read from a file or an environment variable at use time) and SSH (a private
key; the host key checked against a given known_hosts file — never trusted on first
use); keeping the daemon's own commits on the cache's local branch until they are pushed
(that branch, on disk, is the queue that survives restarts); pushing without force, and
on a non-fast-forward rejection fetching, replaying its own commits on the new head and
retrying with backoff. Errors say which URL (never its credentials) and are temporary
(network) or permanent (authentication, host key, conflicts).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from reconciler.adapters.errors import PermanentError, TemporaryError

log = logging.getLogger("reconciler.git")
_HOMEDIR_LOCK = threading.Lock()  # libgit2's home directory (known_hosts) is process-wide
_AUTH_WORDS = ("401", "403", "authentication", "auth", "credentials", "permission denied",
               "unauthorized", "too many redirects or authentication replays")
_HOSTKEY_WORDS = ("hostkey", "host key", "certificate", "known_hosts", "user rejected")


class RebaseConflict(PermanentError):
    """Our unpushed commits do not replay on the remote's new head."""


@dataclass(frozen=True)
class RemoteAuth:
    """Credentials; secrets are read from files or the environment when used."""

    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ssh_private_key: str | None = None
    ssh_public_key: str | None = None
    known_hosts: str | None = None

    def password(self) -> str | None:
        if self.password_file:
            try:
                return Path(self.password_file).read_text().strip()
            except OSError as e:
                raise PermanentError(f"cannot read password file: {e.strerror}") from None
        if self.password_env:
            return os.environ.get(self.password_env)
        return None


def redact_url(url: str) -> str:
    """``url`` without its user-info (user names and passwords)."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1", url)


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, auth: RemoteAuth) -> None:
        super().__init__()
        self.auth = auth
        self.rejected: dict[str, str] = {}
        self.tries = 0

    def credentials(self, url: str, username_from_url: str | None, allowed: Any) -> Any:
        self.tries += 1
        if self.tries > 3:
            raise pygit2.GitError("authentication failed: credentials refused")
        a = self.auth
        user = username_from_url or a.username or "git"
        if allowed & pygit2.enums.CredentialType.SSH_KEY and a.ssh_private_key:
            pub = a.ssh_public_key or f"{a.ssh_private_key}.pub"
            return pygit2.Keypair(user, pub, a.ssh_private_key, "")
        if allowed & pygit2.enums.CredentialType.USERPASS_PLAINTEXT:
            password = a.password()
            if password is not None:
                return pygit2.UserPass(a.username or username_from_url or "git", password)
        raise pygit2.GitError("authentication failed: no usable credentials configured")

    def certificate_check(self, certificate: Any, valid: bool, host: bytes | str) -> bool:
        if not valid:
            name = host.decode() if isinstance(host, bytes) else host
            raise pygit2.GitError(f"host key of {name} is not in known_hosts")
        return True

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message


class RemoteRepo:
    """A bare cache of ``url``'s ``branch`` with a queue of our own unpushed commits."""

    def __init__(self, url: str, cache_dir: Path, branch: str = "main",
                 auth: RemoteAuth | None = None,
                 author: tuple[str, str] = ("reconciler", "reconciler@localhost"),
                 max_pending: int = 200) -> None:
        self.url = url
        self.cache_dir = Path(cache_dir)
        self.branch = branch
        self.auth = auth or RemoteAuth()
        self.author = author
        self.max_pending = max_pending
        self._lock = threading.RLock()

    @property
    def local_ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def tracking_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cache_dir))

    # -- transport ----------------------------------------------------------------------
    def _transport(self, what: str, fn: Any) -> Any:
        """Run ``fn(callbacks)`` with known_hosts in place; errors become ours."""
        cb = _Callbacks(self.auth)
        with _HOMEDIR_LOCK, self._known_hosts_home():
            try:
                return fn(cb), cb
            except (pygit2.GitError, KeyError, OSError, ValueError) as e:
                raise self._error(what, e) from None

    def _known_hosts_home(self) -> Any:
        auth = self.auth

        class _Home:
            def __enter__(self) -> None:
                self.old: str | bytes = pygit2.settings.homedir or ""
                self.tmp = None
                if auth.known_hosts is not None:
                    self.tmp = tempfile.mkdtemp(prefix="reconciler-home-")
                    ssh = Path(self.tmp, ".ssh")
                    ssh.mkdir()
                    src = Path(auth.known_hosts)
                    (ssh / "known_hosts").write_bytes(src.read_bytes() if src.exists() else b"")
                    pygit2.settings.homedir = self.tmp

            def __exit__(self, *exc: object) -> None:
                if self.tmp is not None:
                    pygit2.settings.homedir = self.old
                    shutil.rmtree(self.tmp, ignore_errors=True)

        return _Home()

    def _error(self, what: str, e: BaseException) -> Exception:
        text = str(e)
        password = self.auth.password() if (self.auth.password_file or
                                             self.auth.password_env) else None
        if password:
            text = text.replace(password, "***")
        low = text.lower()
        where = redact_url(self.url)
        if any(w in low for w in _HOSTKEY_WORDS):
            return PermanentError(f"{what} {where}: host key not trusted "
                                  f"(not in the configured known_hosts): {text}")
        if any(w in low for w in _AUTH_WORDS):
            return PermanentError(f"{what} {where}: authentication failed")
        return TemporaryError(f"{what} {where}: {text}", retry_after=5.0)

    # -- fetching -----------------------------------------------------------------------
    def _clone(self) -> None:
        tmp = self.cache_dir.with_name(self.cache_dir.name + ".cloning")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)

        def init_remote(repo: pygit2.Repository, name: str, url: str) -> Any:
            return repo.remotes.create(name, url, "+refs/heads/*:refs/remotes/origin/*")

        self._transport("clone", lambda cb: pygit2.clone_repository(
            self.url, str(tmp), bare=True, callbacks=cb, remote=init_remote,
            checkout_branch=self.branch))
        os.replace(tmp, self.cache_dir)

    def _fetch(self) -> None:
        repo = self.repo
        self._transport("fetch", lambda cb: repo.remotes["origin"].fetch(callbacks=cb))

    def sync(self) -> str:
        """Clone or fetch; bring the local branch up to the remote (replaying our unpushed
        commits onto it). Returns the local branch head."""
        with self._lock:
            if not (self.cache_dir / "HEAD").exists():
                self._clone()
            else:
                self._fetch()
            return self._catch_up()

    def _commit_at(self, ref: str) -> pygit2.Commit | None:
        repo = self.repo
        try:
            obj = repo[repo.references[ref].resolve().target]
        except KeyError:
            return None
        return obj if isinstance(obj, pygit2.Commit) else None

    def _catch_up(self) -> str:
        repo = self.repo
        remote = self._commit_at(self.tracking_ref)
        local = self._commit_at(self.local_ref)
        if remote is None:
            raise PermanentError(f"branch {self.branch} not found at {redact_url(self.url)}")
        if local is None or repo.descendant_of(remote.id, local.id) or local.id == remote.id:
            repo.references.create(self.local_ref, remote.id, force=True)
            return str(remote.id)
        if repo.descendant_of(local.id, remote.id):
            return str(local.id)  # only our own commits on top: nothing to do
        return self._rebase(remote)

    def _own(self) -> list[pygit2.Commit]:
        """Unpushed commits, oldest first."""
        repo = self.repo
        local = self._commit_at(self.local_ref)
        remote = self._commit_at(self.tracking_ref)
        if local is None:
            return []
        walker = repo.walk(local.id, pygit2.enums.SortMode.TOPOLOGICAL |
                           pygit2.enums.SortMode.REVERSE)
        if remote is not None:
            walker.hide(remote.id)
        return list(walker)

    def pending(self) -> int:
        """How many of our commits wait to be pushed."""
        with self._lock:
            return len(self._own()) if (self.cache_dir / "HEAD").exists() else 0

    def _replay(self, commit: pygit2.Commit, onto: pygit2.Commit) -> pygit2.Oid:
        repo = self.repo
        base = commit.parents[0].tree if commit.parents else repo.TreeBuilder().write()
        index = repo.merge_trees(base, onto.tree, commit.tree)
        for conflict in list(index.conflicts or ()):
            ancestor, ours, theirs = conflict
            path = (theirs or ours or ancestor).path
            if not path.startswith("status/"):
                raise RebaseConflict(f"our commit {str(commit.id)[:12]} "
                                     f"({commit.message.splitlines()[0]}) conflicts with the "
                                     f"remote on {path}")
            del index.conflicts[path]
            if theirs is not None:  # "theirs" here is the commit being replayed: ours
                index.add(pygit2.IndexEntry(path, theirs.id, theirs.mode))
            else:
                index.remove(path)
        tree = index.write_tree(repo)
        oid: pygit2.Oid = repo.create_commit(None, commit.author, commit.committer,
                                             commit.message, tree, [onto.id])
        return oid

    def _rebase(self, remote: pygit2.Commit) -> str:
        repo = self.repo
        head = remote
        own = self._own()
        for commit in own:
            new = repo[self._replay(commit, head)]
            assert isinstance(new, pygit2.Commit)
            head = new
        repo.references.create(self.local_ref, head.id, force=True)
        log.info("replayed %d unpushed commit(s) onto %s", len(own), str(remote.id)[:12])
        return str(head.id)

    # -- pushing ------------------------------------------------------------------------
    def push(self, max_attempts: int = 5, backoff: float = 0.2) -> bool:
        """Push our commits (never forced); True when something was pushed."""
        with self._lock:
            if not (self.cache_dir / "HEAD").exists():
                return False
            n = self.pending()
            if n == 0:
                return False
            if n > self.max_pending:
                log.error("%d unpushed commits (limit %d): still trying, dropping nothing",
                          n, self.max_pending)
            for attempt in range(max_attempts):
                if self._push_once():
                    return True
                time.sleep(backoff * (2 ** attempt))
                self._fetch()
                self._catch_up()
            raise TemporaryError(f"push to {redact_url(self.url)}: still rejected after "
                                 f"{max_attempts} attempts", retry_after=10.0)

    def _push_once(self) -> bool:
        """True when pushed; False on a non-fast-forward rejection."""
        repo = self.repo
        spec = f"{self.local_ref}:{self.local_ref}"
        try:
            _, cb = self._transport("push", lambda cb: repo.remotes["origin"].push(
                [spec], callbacks=cb))
        except TemporaryError as e:
            if _non_fast_forward(str(e)):
                return False
            raise
        if cb.rejected:
            reason = "; ".join(cb.rejected.values())
            if _non_fast_forward(reason) or "fetch first" in reason:
                return False
            raise PermanentError(f"push to {redact_url(self.url)} rejected: {reason}")
        local = self._commit_at(self.local_ref)
        assert local is not None
        repo.references.create(self.tracking_ref, local.id, force=True)
        return True


def _non_fast_forward(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in ("non-fast-forward", "fast forward", "fast-forward",
                                  "fetch first", "cannot push because a reference",
                                  "stale info", "not present locally"))
