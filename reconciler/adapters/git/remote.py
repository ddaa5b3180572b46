"""The desired-state repository's remote: a bare cache, fetches and pushes, with pygit2.

Owns: cloning and fetching over ``file://``, local paths, HTTP(S) (basic auth or a token,
the secret read from a file or an environment variable at use time) and SSH (a key
pair; the host key checked against a given known_hosts file — never trusted on first
use); keeping the daemon's own commits on the cache's local branch until they are pushed
(that branch, on disk, is the queue that survives restarts and kill -9); pushing without
force, and on a non-fast-forward rejection fetching, replaying its own commits on the
new head (conflicts under the status directory keep ours, others are refused) and
retrying with backoff. Errors name the URL without its credentials and are temporary
(network) or permanent (authentication, host key, a missing branch).

Git faults never become a crash loop: a queued commit that does not replay on the
remote's new head (a revert against a human edit of the same lines) is set aside —
that commit kept under ``refs/reconciler/set-aside/<time>-<sha12>`` in the cache for
a person, logged at error level — and the rest of the queue (the status records: the
failure and bake records the planner needs to hold a failed version back) is replayed
without it (a failure is forgotten only once its revert reached the remote, see
``GitProgressStore.clear_failure``), so the planner commits the revert again on the
remote's new head. A
cache that cannot be read or fetched into because it is damaged (not because the network
is down) is moved aside to ``<cache>.corrupt-<time>`` and cloned again, its queued
commits carried over when they can still be read. The cache's packs, branch tips and
queue are checked in Python (``odbcheck``) before libgit2 reads them, and a damaged
cache's objects are salvaged in Python only: libgit2 loops forever or crashes on some
damaged objects. Every network operation has a connect and an I/O deadline. Credentials in the URL
(``https://user:token@host/...``) are kept in memory only: the cache's ``config`` holds
the URL without them; the cache is 0700, its ``config`` 0600.

How the SSH host key is checked: pygit2 hands ``certificate_check`` no key (only libgit2's
verdict), and libgit2 checks host keys against ``$HOME/.ssh/known_hosts`` of its own
home directory. So, for the length of each SSH operation, libgit2's home directory (a
process-wide setting, hence a lock) points at a private copy of the configured
known_hosts file, and ``certificate_check`` refuses whatever libgit2 did not find there.
"""

from __future__ import annotations

import base64
import contextlib
import gc
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pygit2

from reconciler.adapters.errors import AdapterError, PermanentError, TemporaryError
from reconciler.adapters.git import odbcheck
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
_CORRUPT_WORDS = ("corrupt", "object not found", "failed to parse", "inflate", "packfile",
                  "bad object", "missing object", "invalid object", "failed to read",
                  "object is no", "unexpected end", "failed to load", "invalid oid",
                  "missing delta base", "mismatched")
#: A rejection that means the remote moved (fetch, replay ours, try again). The server
#: answers "failed to update ref" / "cannot lock ref" when another writer's push won the
#: race for the branch (sharded replicas push at the same moment): the remote moved too.
_NON_FF_WORDS = ("non-fast-forward", "fast-forward", "fastforward", "fetch first",
                 "not present locally", "stale info", "failed to update ref",
                 "cannot lock ref")


#: libgit2 waits forever on a remote that accepts a connection and never answers unless
#: told otherwise (process-wide settings, set before each network operation).
CONNECT_TIMEOUT = 30.0
IO_TIMEOUT = 120.0


def _network_deadlines() -> None:
    pygit2.settings.server_connect_timeout = int(CONNECT_TIMEOUT * 1000)
    pygit2.settings.server_timeout = int(IO_TIMEOUT * 1000)


#: At most this many queued commits are checked or salvaged in a cache that may be damaged.
SALVAGE_LIMIT = 10_000


class RebaseConflict(PermanentError):
    """Our unpushed commits do not replay on the remote's new head."""


class _Corrupt(Exception):
    """The cache cannot be read: damaged objects, references or configuration."""


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


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user-info, and the user name and password it held (decoded).
    Only HTTP(S) URLs are split: an SSH URL's user name is no secret, and libgit2 needs it
    there to pick the account."""
    clean = redact_url(url)
    if clean == url or not url.lower().startswith(("http://", "https://")):
        return url, None, None
    rest = url.partition("://")[2]
    userinfo = rest[:len(rest) - len(clean.partition("://")[2]) - 1]
    user, sep, password = userinfo.partition(":")
    return clean, unquote(user) or None, unquote(password) if sep else None


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
                 lease: tuple[str, pygit2.Oid | None] | None = None,
                 url_password: str | None = None) -> None:
        super().__init__()
        self.auth = auth
        self.url_password = url_password  # from the configured URL, held in memory only
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
            password = self.url_password
            if password is None:
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
        # credentials in the URL stay in memory: the cache's config gets the bare URL
        self.url, url_user, self._url_password = split_userinfo(url)
        auth = auth or RemoteAuth()
        if url_user and not auth.username:
            auth = replace(auth, username=url_user)
        self.signer = signer  # signs our commits replayed onto a moved remote
        self.status_dir = status_dir  # the live status directory, read at each replay
        self.cache_dir = Path(cache_dir)
        self.branch = branch
        self.auth = auth
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
        """Something is in the cache directory (a cache, maybe a damaged one)."""
        try:
            return self.cache_dir.is_dir() and any(self.cache_dir.iterdir())
        except OSError:
            return False

    def _secure(self) -> None:
        """The cache 0700 and its config 0600 (older caches and libgit2's rewrites)."""
        with contextlib.suppress(OSError):
            self.cache_dir.chmod(0o700)
            (self.cache_dir / "config").chmod(0o600)

    # -- transport ----------------------------------------------------------------------
    def _call(self, fn: Callable[[_Callbacks], object],
              lease: tuple[str, pygit2.Oid | None] | None = None) -> _Callbacks:
        """Run ``fn(callbacks)`` with the configured known_hosts in place; library errors
        propagate, refusals from the callbacks become PermanentError."""
        cb = _Callbacks(self.auth, self.url, lease, self._url_password)
        _network_deadlines()
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
        url_password = self._url_password
        for secret in [*secrets, *([url_password] if url_password else [])]:
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
        parent = self.cache_dir.parent
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in parent.glob(f"{self.cache_dir.name}.cloning*"):  # after a kill -9
            shutil.rmtree(stale, ignore_errors=True)
        # a new name each time: libgit2 keeps open pack files by path, process-wide
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f"{self.cache_dir.name}.cloning-"))
        tmp.rmdir()

        def init_remote(repo: pygit2.Repository, name: str, url: str) -> Any:
            return repo.remotes.create(name, url, "+refs/heads/*:refs/remotes/origin/*")

        self._transport("clone", lambda cb: pygit2.clone_repository(
            self.url, str(tmp), bare=True, callbacks=cb, remote=init_remote))
        tmp.chmod(0o700)
        (tmp / "config").chmod(0o600)
        if self.cache_dir.is_dir() and not any(self.cache_dir.iterdir()):
            self.cache_dir.rmdir()
        os.replace(tmp, self.cache_dir)

    def _fetch(self) -> None:
        try:
            remote = self.repo.remotes["origin"]
            if remote.url != self.url:  # the configured URL changed (or its credentials did)
                self.repo.remotes.set_url("origin", self.url)
                remote = self.repo.remotes["origin"]
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            raise _Corrupt(f"cannot read the remote 'origin' from its config: {e}") from None
        self._transport("fetch", lambda cb: remote.fetch(callbacks=cb))

    def sync(self) -> str:
        """Clone or fetch, then bring the local branch up to the remote's (our unpushed
        commits replayed on top of it). Returns the local branch head. A damaged cache is
        moved aside and cloned again."""
        with self._lock:
            if not self._cloned():
                self._clone()
                head = self._integrate([])
            else:
                head = self._sync_cached()
            self._secure()
            return head

    def _sync_cached(self) -> str:
        try:
            was = self._local_id()
            own = self._own_checked()
        except _Corrupt as e:
            return self._reclone(str(e), None)
        try:
            self._fetch()
        except _Corrupt as e:
            return self._reclone(str(e), own)
        except AdapterError as e:
            damage = self._damage()
            if damage is None and not (isinstance(e, TemporaryError) and
                                       any(w in str(e).lower() for w in _CORRUPT_WORDS)):
                raise
            return self._reclone(damage or str(e), own)
        try:
            return self._integrate(_commits(self.repo, own), was)
        except (pygit2.GitError, KeyError, ValueError) as e:
            return self._reclone(f"{type(e).__name__}: {e}", own)

    # -- a damaged cache ----------------------------------------------------------------
    def _own_checked(self) -> list[pygit2.Oid]:
        """Our unpushed commits (ids), the cache checked for damage on the way."""
        try:
            repo = self.repo
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            raise _Corrupt(f"cannot open it: {e}") from None
        damage = self._damage(repo)
        if damage is not None:
            raise _Corrupt(damage)
        try:
            return [c.id for c in self._own()]
        except (pygit2.GitError, KeyError, ValueError) as e:
            raise _Corrupt(f"cannot walk the local branch: {e}") from None

    def _damage(self, repo: pygit2.Repository | None = None) -> str | None:
        """What is wrong with the cache, or None when its branch tips, their trees and
        our unpushed commits all read back."""
        try:
            repo = repo or self.repo
            self._check_objects(repo)
            for ref in (self.local_ref, self.tracking_ref):
                try:
                    target = repo.references[ref].resolve().target
                except KeyError:
                    continue
                tip = repo[target]
                if not isinstance(tip, pygit2.Commit):
                    return f"{ref} does not point to a commit"
                _ = len(tip.tree)
            for commit in self._own():
                _ = len(commit.tree)
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            return f"{type(e).__name__}: {e}"
        return None

    def _check_objects(self, repo: pygit2.Repository) -> None:
        """The packs, the branch tips and our queue (where loose) checked in Python before
        libgit2 reads them: it loops forever or crashes on some damaged ones."""
        objects = Path(repo.path) / "objects"
        odbcheck.check_packs(objects)
        tips = {}
        for ref in (self.local_ref, self.tracking_ref):
            with contextlib.suppress(KeyError):
                tips[ref] = str(repo.references[ref].resolve().target)
        for tip in tips.values():
            odbcheck.check_commit(objects, tip)
        if self.local_ref in tips:
            odbcheck.check_chain(objects, tips[self.local_ref], tips.get(self.tracking_ref),
                              SALVAGE_LIMIT)

    def _reclone(self, reason: str, own: list[pygit2.Oid] | None) -> str:
        """Move the damaged cache aside, clone again and replay the queued commits that
        can still be read from the old one."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.cache_dir.with_name(f"{self.cache_dir.name}.corrupt-{stamp}")
        gc.collect()  # let go of the damaged cache's open files before cloning afresh
        os.replace(self.cache_dir, aside)
        log.error("Git cache %s is damaged (%s): moved aside to %s, cloning %s again",
                  self.cache_dir, self._scrub(reason), aside, self.display_url)
        self._clone()
        repo = self.repo
        carried: list[pygit2.Commit] = []
        if own is None:
            own = self._salvage(aside)
        if own is None:
            log.error("the unpushed commits in %s could not be read: they are lost", aside)
        elif own:
            try:  # read in Python, never by libgit2 from the damaged cache
                odbcheck.salvage(aside / "objects", str(own[-1]), repo, None, SALVAGE_LIMIT)
                carried = _commits(repo, own)
            except (pygit2.GitError, KeyError, OSError, ValueError) as e:
                log.error("the %d unpushed commit(s) in %s could not be read (%s): they are "
                          "lost", len(own), aside, self._scrub(str(e)))
                carried = []
            else:
                log.warning("carried %d unpushed commit(s) over from %s", len(carried), aside)
        return self._integrate(carried)

    def _salvage(self, aside: Path) -> list[pygit2.Oid] | None:
        """Our queue read from a cache that cannot be opened (no HEAD, a broken config):
        its branch references read as files, its loose objects checked and copied into
        the fresh clone (None when they cannot be read)."""
        def ref(name: str) -> pygit2.Oid | None:
            with contextlib.suppress(OSError, ValueError):
                return pygit2.Oid(hex=(aside / name).read_text().strip())
            with contextlib.suppress(OSError, ValueError):
                for line in (aside / "packed-refs").read_text().splitlines():
                    sha, _, refname = line.partition(" ")
                    if refname == name:
                        return pygit2.Oid(hex=sha)
            return None

        local, seen = ref(self.local_ref), ref(self.tracking_ref)
        if local is None:
            return None
        try:
            carried = odbcheck.salvage(aside / "objects", str(local), self.repo,
                                    None if seen is None else str(seen), SALVAGE_LIMIT)
            return [pygit2.Oid(hex=oid) for oid in carried]
        except (pygit2.GitError, KeyError, OSError, ValueError):
            return None

    # -- the queue ----------------------------------------------------------------------
    def _commit_at(self, repo: pygit2.Repository, ref: str) -> pygit2.Commit | None:
        try:
            obj = repo[repo.references[ref].resolve().target]
        except KeyError:
            return None
        return obj if isinstance(obj, pygit2.Commit) else None

    def _local_id(self) -> pygit2.Oid | None:
        try:
            local = self._commit_at(self.repo, self.local_ref)
        except (pygit2.GitError, KeyError, OSError, ValueError) as e:
            raise _Corrupt(f"cannot read the local branch: {e}") from None
        return local.id if local is not None else None

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

    def _integrate(self, own: list[pygit2.Commit], was: pygit2.Oid | bool | None = True
                   ) -> str:
        """Point the local branch at the remote head plus those of ``own`` (our commits
        as of before the fetch) that the remote does not contain yet. ``was``: the local
        head ``own`` was read at; a commit made on the branch since (by another thread:
        a revert, a progress record) is not dropped — replayed too when it sits on that
        head, else TemporaryError, try again."""
        repo = self.repo
        remote = self._commit_at(repo, self.tracking_ref)
        if remote is None:
            raise PermanentError(f"branch {self.branch} not found at {self.display_url}")
        todo = [c for c in own if c.id != remote.id and not repo.descendant_of(remote.id, c.id)]
        local = self._commit_at(repo, self.local_ref)
        if isinstance(was, pygit2.Oid) and local is not None and local.id != was and \
                repo.descendant_of(local.id, was):
            walker = repo.walk(local.id, pygit2.enums.SortMode.TOPOLOGICAL |
                               pygit2.enums.SortMode.REVERSE)
            walker.hide(was)
            todo += list(walker)  # made while fetching, on top of the queue: ours too
            was = local.id
        if was is not True and (local.id if local is not None else None) != was:
            raise TemporaryError(f"a commit was made on {self.local_ref} while fetching; "
                                 "try again", retry_after=0.1)
        if todo and local is not None and todo[0].parent_ids == [remote.id] and \
                local.id == todo[-1].id:
            return str(local.id)  # already on top of the remote head
        head = self._replay_all(repo, todo, remote)
        self._move_local(repo, local, head)
        return str(head)

    def _set_aside(self, repo: pygit2.Repository, commit: pygit2.Commit, reason: str) -> str:
        """Keep one queued commit that does not replay under a ref for a person; the
        rest of the queue is replayed without it."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        ref = f"refs/reconciler/set-aside/{stamp}-{str(commit.id)[:12]}"
        repo.references.create(ref, commit.id, force=True)
        log.error("unpushed commit set aside as %s in %s (the others are replayed on "
                  "%s's head): %s (inspect it with: git --git-dir %s show %s)", ref,
                  self.cache_dir, self.display_url, self._scrub(reason), self.cache_dir, ref)
        return ref

    def _replay_all(self, repo: pygit2.Repository, todo: list[pygit2.Commit],
                    onto: pygit2.Commit) -> pygit2.Oid:
        head = onto
        for commit in todo:
            try:
                new = _replay(repo, commit, head, pygit2.Signature(*self.author),
                              self.status_dir(), self.signer)
            except RebaseConflict as e:
                self._set_aside(repo, commit, str(e))
                continue
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
                local = self._commit_at(self.repo, self.local_ref)
                was = local.id if local is not None else None
                own = self._own()
                self._fetch()
                self._integrate(own, was)
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


def _commits(repo: pygit2.Repository, oids: list[pygit2.Oid]) -> list[pygit2.Commit]:
    out: list[pygit2.Commit] = []
    for oid in oids:
        obj = repo[oid]
        if isinstance(obj, pygit2.Commit):
            out.append(obj)
    return out


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
