"""The desired-state repository's remote: a bare cache, fetches and pushes, with pygit2.

Owns: cloning and fetching over ``file://``, local paths, HTTP(S) (basic auth or a token,
the secret read from a file or an environment variable at use time) and SSH (a key
pair; the host key checked against a given known_hosts file — never trusted on first
use); keeping the daemon's own commits on the cache's local branch until they are pushed
(that branch, on disk, is the queue that survives restarts and kill -9); pushing without
force, and on a non-fast-forward rejection fetching, replaying its own commits on the
new head (conflicts under the status directory keep ours, others are refused) and
retrying with backoff. Errors name the URL without its credentials and are temporary
(network) or permanent (authentication, host key, conflicts, a missing branch).

How the SSH host key is checked: pygit2 hands ``certificate_check`` no key (only libgit2's
verdict), and libgit2 checks host keys against ``$HOME/.ssh/known_hosts`` of its own
home directory. So, for the length of each SSH operation, libgit2's home directory (a
process-wide setting, hence a lock) points at a private copy of the configured
known_hosts file, and ``certificate_check`` refuses whatever libgit2 did not find there.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pygit2

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.git.sign import Signer, make_commit
from reconciler.adapters.secrets import read_secret

log = logging.getLogger("reconciler.git")

_HOMEDIR_LOCK = threading.Lock()  # libgit2's home directory (known_hosts) is process-wide
_RETRY_AFTER = 5.0
_AUTH_WORDS = ("401", "403", "authentication", "unauthorized", "permission denied",
               "credentials", "userauth")
_HOSTKEY_WORDS = ("hostkey", "host key", "known_hosts")
_MISSING_WORDS = ("404", "repository not found", "could not find repository",
                  "does not appear to be a git repository", "failed to resolve path")
_NON_FF_WORDS = ("non-fast-forward", "fast-forward", "fastforward", "fetch first",
                 "not present locally", "stale info")


class RebaseConflict(PermanentError):
    """Our unpushed commits do not replay on the remote's new head."""


class _Refused(Exception):
    """Raised inside a pygit2 callback: a permanent refusal with a secret-free message."""


class _Moved(Exception):
    """Raised inside the push negotiation: the remote branch is not where we last saw it."""


# ---------------------------------------------------------------- credentials


@dataclass(frozen=True)
class RemoteAuth:
    """Where the credentials are; secrets are read from their file or variable when used
    and never kept in this object."""

    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ssh_private_key: str | None = None
    ssh_public_key: str | None = None  # default: the private key's path + ".pub"
    known_hosts: str | None = None  # SSH host keys accepted; default ~/.ssh/known_hosts

    def password(self) -> str | None:
        """The password or token, read now (None when none is configured)."""
        return read_secret(self.password_file, self.password_env, os.environ,
                           "the Git password")

    def secrets(self) -> list[str]:
        """Every secret that must never appear in a message."""
        try:
            password = self.password()
        except PermanentError:
            return []
        return [password] if password else []


def redact_url(url: str) -> str:
    """``url`` without its user-info (user names, passwords, tokens)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        cut = rest.rfind("@", 0, len(authority))
    elif ":" in rest[:rest.find("@")]:
        cut = rest.rfind("@")  # an unencoded '/' in the password: cut at the last '@'
    else:
        return url
    return f"{scheme}://{rest[cut + 1:]}"


def _ssh_host(url: str) -> str | None:
    """How known_hosts names the SSH host of ``url`` (``[host]:port`` off port 22)."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("ssh", "git+ssh", "ssh+git") or not parts.hostname:
            return None
        port = parts.port or 22
        return parts.hostname if port == 22 else f"[{parts.hostname}]:{port}"
    m = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)  # scp-like user@host:path
    return m.group(1) if m and not Path(url).exists() else None


def _host_matches(field: str, name: str) -> bool:
    if field.startswith("|1|"):
        try:
            _, _, salt, digest = field.split("|")[:4]
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        except ValueError:
            return False
        return hmac.compare_digest(base64.b64encode(mac).decode(), digest)
    return name in field.split(",")


def known_host_keys(text: str, name: str) -> list[str]:
    """The ``type base64`` keys ``text`` (a known_hosts file) lists for host ``name``
    (plain or hashed entries; wildcard patterns are not expanded)."""
    keys = []
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("@"):
            continue  # @cert-authority / @revoked are not plain host keys
        if len(fields) >= 3 and not fields[0].startswith("#") and \
                _host_matches(fields[0], name):
            keys.append(f"{fields[1]} {fields[2]}")
    return keys


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials, host key verdicts and push rejections for one network operation."""

    def __init__(self, auth: RemoteAuth, url: str,
                 lease: tuple[str, pygit2.Oid | None] | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.url = url
        self.lease = lease  # (remote ref, where we last saw it): push only if still there
        self.rejected: dict[str, str] = {}
        self.tries = 0

    def credentials(self, url: str, username_from_url: str | None, allowed: Any) -> Any:
        self.tries += 1
        if self.tries > 3:
            raise _Refused(f"authentication failed for {redact_url(self.url)}")
        types = pygit2.enums.CredentialType
        if allowed & types.SSH_KEY and self.auth.ssh_private_key:
            return self._keypair(username_from_url)
        if allowed & types.USERPASS_PLAINTEXT:
            password = self.auth.password()
            if password is not None:
                user = self.auth.username or username_from_url or "git"
                return pygit2.UserPass(user, password)
        raise _Refused(f"authentication failed for {redact_url(self.url)}: the remote asks "
                       "for credentials and none of the configured ones fit")

    def _keypair(self, username_from_url: str | None) -> pygit2.Keypair:
        private = self.auth.ssh_private_key
        assert private is not None
        public = self.auth.ssh_public_key or f"{private}.pub"
        for path in (private, public):
            if not os.access(path, os.R_OK):
                raise _Refused(f"SSH key file {path} is not readable")
        user = username_from_url or self.auth.username or "git"
        return pygit2.Keypair(user, public, private, "")

    def certificate_check(self, certificate: Any, valid: bool, host: bytes | str) -> bool:
        if valid:
            return True
        name = host.decode() if isinstance(host, bytes) else host
        ssh = _ssh_host(self.url)
        if ssh is None:
            raise _Refused(f"TLS certificate of {name} is not trusted "
                           f"({redact_url(self.url)})")
        raise _Refused(self._hostkey_message(ssh))

    def _hostkey_message(self, ssh_host: str) -> str:
        path = Path(self.auth.known_hosts or Path.home() / ".ssh" / "known_hosts")
        try:
            listed = known_host_keys(path.read_text(), ssh_host)
        except OSError:
            listed = []
        if listed:
            return (f"host key of {ssh_host} does not match the key(s) for it in {path} "
                    "(refusing: the host key changed or someone is in between)")
        return f"host key of {ssh_host} is unknown: {path} has no entry for it"

    def push_negotiation(self, updates: list[pygit2.remotes.PushUpdate]) -> None:
        if self.lease is None:
            return
        ref, seen = self.lease
        for update in updates:
            now = None if update.src == pygit2.Oid(raw=bytes(20)) else update.src
            if update.dst_refname == ref and now != seen:
                raise _Moved(f"{ref} is at {now}, not {seen}")

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected[refname] = message


# ---------------------------------------------------------------- the remote


class RemoteRepo:
    """A bare cache of ``url``'s ``branch``; the commits on the cache's local branch that
    the remote does not have yet are ours, waiting to be pushed."""

    def __init__(self, url: str, cache_dir: Path, branch: str = "main",
                 auth: RemoteAuth | None = None,
                 author: tuple[str, str] = ("reconciler", "reconciler@localhost"),
                 max_pending: int = 200,
                 status_dir: Callable[[], str] = lambda: "status",
                 signer: Signer | None = None) -> None:
        self.url = url
        self.signer = signer  # signs our commits replayed onto a moved remote
        self.status_dir = status_dir  # the live status directory, read at each replay
        self.cache_dir = Path(cache_dir)
        self.branch = branch
        self.auth = auth or RemoteAuth()
        self.author = author
        self.max_pending = max_pending
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"RemoteRepo({self.display_url!r}, {str(self.cache_dir)!r}, {self.branch!r})"

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @property
    def local_ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def tracking_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cache_dir))

    def _cloned(self) -> bool:
        return (self.cache_dir / "HEAD").exists()

    # -- transport ----------------------------------------------------------------------
    def _call(self, fn: Callable[[_Callbacks], object],
              lease: tuple[str, pygit2.Oid | None] | None = None) -> _Callbacks:
        """Run ``fn(callbacks)`` with the configured known_hosts in place; library errors
        propagate, refusals from the callbacks become PermanentError."""
        cb = _Callbacks(self.auth, self.url, lease)
        with self._known_hosts_home():
            try:
                fn(cb)
            except _Refused as e:
                raise PermanentError(self._scrub(str(e))) from None
        return cb

    def _transport(self, what: str, fn: Callable[[_Callbacks], object]) -> _Callbacks:
        try:
            return self._call(fn)
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            raise self._error(what, e) from None

    @contextlib.contextmanager
    def _known_hosts_home(self) -> Iterator[None]:
        if self.auth.known_hosts is None or _ssh_host(self.url) is None:
            yield
            return
        try:
            data = Path(self.auth.known_hosts).read_bytes()
        except OSError as e:
            raise PermanentError(f"cannot read known_hosts file {self.auth.known_hosts}: "
                                 f"{e.strerror}") from None
        with _HOMEDIR_LOCK, tempfile.TemporaryDirectory(prefix="reconciler-ssh-") as home:
            (Path(home) / ".ssh").mkdir()
            (Path(home) / ".ssh" / "known_hosts").write_bytes(data)
            old = pygit2.settings.homedir or str(Path.home())
            pygit2.settings.homedir = home
            try:
                yield
            finally:
                pygit2.settings.homedir = old

    def _scrub(self, text: str) -> str:
        """``text`` without our URL's user-info or any configured secret."""
        text = text.replace(self.url, self.display_url)
        secrets = self.auth.secrets()
        userinfo = urlsplit(self.url).password if "://" in self.url else None
        for secret in [*secrets, *([userinfo] if userinfo else [])]:
            text = text.replace(secret, "***")
        return text

    def _error(self, what: str, e: BaseException) -> PermanentError | TemporaryError:
        text = self._scrub(str(e))
        low = text.lower()
        where = self.display_url
        if any(w in low for w in _HOSTKEY_WORDS):
            return PermanentError(f"{what} {where}: host key not trusted: {text}")
        if any(w in low for w in _AUTH_WORDS):
            return PermanentError(f"{what}: authentication failed for {where}")
        if any(w in low for w in _MISSING_WORDS):
            return PermanentError(f"{what} {where}: repository not found: {text}")
        return TemporaryError(f"{what} {where}: {text}", retry_after=_RETRY_AFTER)

    # -- fetching -----------------------------------------------------------------------
    def _clone(self) -> None:
        tmp = self.cache_dir.with_name(self.cache_dir.name + ".cloning")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)

        def init_remote(repo: pygit2.Repository, name: str, url: str) -> Any:
            return repo.remotes.create(name, url, "+refs/heads/*:refs/remotes/origin/*")

        self._transport("clone", lambda cb: pygit2.clone_repository(
            self.url, str(tmp), bare=True, callbacks=cb, remote=init_remote))
        os.replace(tmp, self.cache_dir)

    def _fetch(self) -> None:
        remote = self.repo.remotes["origin"]
        if remote.url != self.url:  # the configured URL changed (or its credentials did)
            self.repo.remotes.set_url("origin", self.url)
            remote = self.repo.remotes["origin"]
        self._transport("fetch", lambda cb: remote.fetch(callbacks=cb))

    def sync(self) -> str:
        """Clone or fetch, then bring the local branch up to the remote's (our unpushed
        commits replayed on top of it). Returns the local branch head."""
        with self._lock:
            if not self._cloned():
                self._clone()
                return self._integrate([])
            own = self._own()
            self._fetch()
            return self._integrate(own)

    # -- the queue ----------------------------------------------------------------------
    def _commit_at(self, repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
        try:
            obj = repo[repo.references[ref].resolve().target]
        except KeyError:
            return None
        return obj if isinstance(obj, pygit2.Commit) else None

    def _own(self) -> list[pygit2.Commit]:
        """Our unpushed commits, oldest first: the local branch's commits the last known
        remote head does not contain."""
        repo = self.repo
        local = self._commit_at(repo, self.local_ref)
        if local is None:
            return []
        walker = repo.walk(local.id, pygit2.enums.SortMode.TOPOLOGICAL |
                           pygit2.enums.SortMode.REVERSE)
        remote = self._commit_at(repo, self.tracking_ref)
        if remote is not None:
            walker.hide(remote.id)
        return list(walker)

    def head(self) -> str:
        """The local branch's head, without a fetch (it includes our unpushed commits)."""
        with self._lock:
            local = self._commit_at(self.repo, self.local_ref) if self._cloned() else None
            if local is None:
                raise PermanentError(f"branch {self.branch} is not cloned yet")
            return str(local.id)

    def pending(self) -> int:
        """How many of our commits wait to be pushed."""
        with self._lock:
            return len(self._own()) if self._cloned() else 0

    def _integrate(self, own: list[pygit2.Commit]) -> str:
        """Point the local branch at the remote head plus those of ``own`` (our commits
        as of before the fetch) that the remote does not contain yet."""
        repo = self.repo
        remote = self._commit_at(repo, self.tracking_ref)
        if remote is None:
            raise PermanentError(f"branch {self.branch} not found at {self.display_url}")
        todo = [c for c in own if c.id != remote.id and not repo.descendant_of(remote.id, c.id)]
        local = self._commit_at(repo, self.local_ref)
        if todo and local is not None and todo[0].parent_ids == [remote.id]:
            return str(local.id)  # already on top of the remote head
        head = self._replay_all(repo, todo, remote)
        self._move_local(repo, local, head)
        return str(head)

    def _replay_all(self, repo: pygit2.Repository, todo: list[pygit2.Commit],
                    onto: pygit2.Commit) -> pygit2.Oid:
        head = onto
        for commit in todo:
            new = _replay(repo, commit, head, pygit2.Signature(*self.author),
                          self.status_dir(), self.signer)
            if new is not None:
                replayed = repo[new]
                assert isinstance(replayed, pygit2.Commit)
                head = replayed
        if todo:
            log.info("replayed %d unpushed commit(s) onto %s", len(todo), str(onto.id)[:12])
        return head.id

    def _move_local(self, repo: pygit2.Repository, was: pygit2.Commit | None,
                    to: pygit2.Oid) -> None:
        now = self._commit_at(repo, self.local_ref)
        if (now.id if now else None) != (was.id if was else None):
            raise TemporaryError(f"{self.local_ref} moved while replaying onto the remote "
                                 "head; try again", retry_after=0.1)
        repo.references.create(self.local_ref, to, force=True)

    # -- pushing ------------------------------------------------------------------------
    def push(self, max_attempts: int = 5, backoff: float = 0.2) -> bool:
        """Push our commits, never forced; True when something was pushed. A rejection
        because the remote moved is met by fetching, replaying ours and retrying."""
        with self._lock:
            n = self.pending()
            if n == 0:
                return False
            if n > self.max_pending:
                log.error("%d unpushed commits to %s, over the limit of %d: the remote has "
                          "not taken our commits for a while (none are dropped)",
                          n, self.display_url, self.max_pending)
            try:
                return self._push_retrying(max_attempts, backoff)
            except TemporaryError as e:
                if n > self.max_pending:
                    raise TemporaryError(f"{e} ({n} unpushed commits, over the limit of "
                                         f"{self.max_pending})", e.retry_after) from None
                raise

    def _push_retrying(self, max_attempts: int, backoff: float) -> bool:
        for attempt in range(max_attempts):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
                own = self._own()
                self._fetch()
                self._integrate(own)
            if self._push_once():
                return True
            log.info("push to %s rejected: the remote moved (attempt %d of %d)",
                     self.display_url, attempt + 1, max_attempts)
        raise TemporaryError(f"push to {self.display_url}: still rejected after "
                             f"{max_attempts} attempts", retry_after=10.0)

    def _push_once(self) -> bool:
        """True when pushed; False on a non-fast-forward rejection."""
        repo = self.repo
        local = self._commit_at(repo, self.local_ref)
        assert local is not None
        seen = self._commit_at(repo, self.tracking_ref)
        source = "refs/reconciler/pushing"  # exactly this commit, whatever the branch does
        repo.references.create(source, local.id, force=True)
        try:
            cb = self._call(lambda cb: repo.remotes["origin"].push(
                [f"{source}:{self.local_ref}"], callbacks=cb),
                lease=(self.local_ref, seen.id if seen else None))
        except _Moved:
            return False  # even a fast-forward would undo a rewrite we have not seen
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            if _non_fast_forward(str(e)):
                return False
            raise self._error("push", e) from None
        finally:
            repo.references.delete(source)
        if cb.rejected:
            return self._rejected(cb.rejected)
        repo.references.create(self.tracking_ref, local.id, force=True)
        log.info("pushed %s to %s", str(local.id)[:12], self.display_url)
        return True

    def _rejected(self, rejected: dict[str, str]) -> bool:
        reason = self._scrub("; ".join(rejected.values()))
        if _non_fast_forward(reason):
            return False
        raise PermanentError(f"push to {self.display_url} rejected: {reason}")


def _non_fast_forward(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in _NON_FF_WORDS)


def _replay(repo: pygit2.Repository, commit: pygit2.Commit, onto: pygit2.Commit,
            committer: pygit2.Signature, status_dir: str = "status",
            signer: Signer | None = None) -> pygit2.Oid | None:
    """``commit`` re-applied on ``onto`` by ``committer`` (author and message with its
    trailers kept; signed by ``signer`` when given); None when ``onto`` already has its
    change. Conflicts under ``status_dir`` take ``commit``'s side."""
    prefix = f"{status_dir.rstrip('/')}/"
    base = commit.parents[0].tree if commit.parents else repo.TreeBuilder().write()
    index = repo.merge_trees(base, onto.tree, commit.tree)
    for ancestor, ours, theirs in list(index.conflicts or ()):
        path = (theirs or ours or ancestor).path
        if not path.startswith(prefix):
            raise RebaseConflict(f"our commit {str(commit.id)[:12]} "
                                 f"({commit.message.splitlines()[0]}) conflicts with the "
                                 f"remote on {path}")
        del index.conflicts[path]
        if theirs is not None:  # "theirs" is the commit being replayed: ours
            index.add(pygit2.IndexEntry(path, theirs.id, theirs.mode))
        else:
            index.remove(path)
    tree = index.write_tree(repo)
    if tree == onto.tree.id:
        return None
    return make_commit(repo, None, commit.author, committer, commit.message, tree,
                       [onto.id], signer)
