"""Where the daemon's desired revisions come from, and where its status goes.

Owns: the two sources ``reconciler run`` knows — a Git remote (fetched into a bare cache,
status and reverts committed to the cache's branch and pushed) and a plain directory
(watched with watchfiles; status kept in the state directory) — behind one small
interface the daemon drives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pygit2

from reconciler.adapters.errors import AdapterError, PermanentError
from reconciler.adapters.git.signing import SigningPolicy, verify
from reconciler.adapters.git.status import StatusWriter, own_status_only, render
from reconciler.compose.reconciler import (
    GitSettings,
    LocalSettings,
    git_reconciler,
    local_reconciler,
)
from reconciler.core.statusdocs import status_documents
from reconciler.daemon.config import DaemonConfig
from reconciler.engine.tick import Reconciler, TickReport

log = logging.getLogger("reconciler.source")


@dataclass(frozen=True)
class SyncResult:
    """What a fetch found: the desired revision to plan, and why a newer one was refused."""

    revision: str | None
    changed: bool
    rejection: str = ""


class Source(Protocol):
    """A source of desired revisions for the daemon."""

    reconciler: Reconciler

    def sync(self) -> SyncResult:
        ...

    def refresh(self) -> SyncResult:
        """Take our own new commits (a revert) as desired, without a fetch."""
        ...

    def publish(self, report: TickReport) -> None:
        """Record the tick's status (and push whatever is queued)."""
        ...

    def pending(self) -> int:
        ...

    def flush(self) -> None:
        """Push whatever is queued."""
        ...


def _summary(report: TickReport) -> str:
    done = [o for o in report.outcomes if o.status == "done"]
    if report.errors:
        return f"revision {str(report.revision)[:12]} rejected ({len(report.errors)} errors)"
    if done:
        return f"{len(done)} steps done at {str(report.revision)[:12]}"
    return f"fleet at {str(report.revision)[:12]}"


def _documents(report: TickReport, reconciler: Reconciler, rejection: str) -> dict[
        str, dict[str, object]]:
    last_good = reconciler.last_good.revision if reconciler.last_good else None
    errors = [*report.errors, *([rejection] if rejection else [])]
    rollout = reconciler.readers.rollout() if reconciler.readers.rollout else {}
    return status_documents(report.plan, report.live, rollout, report.revision, last_good,
                            errors)


@dataclass
class GitSource:
    """A remote repository, fetched into a bare cache under the state directory."""

    cfg: DaemonConfig
    remote: object  # reconciler.adapters.git.remote.RemoteRepo
    reconciler: Reconciler = field(init=False)
    _revision: str | None = None
    _seen_head: str | None = None
    _rejection: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.reconciler = git_reconciler(GitSettings(
            cache=cfg.git_cache, branch=cfg.repo.branch, state_dir=Path(cfg.state_dir),
            revision=lambda: self._revision, author=cfg.git_author,
            prometheus_url=cfg.prometheus_url,
            terraform_cli_config=Path(cfg.terraform_cli_config)
            if cfg.terraform_cli_config else None))

    @property
    def repo(self) -> pygit2.Repository:
        return pygit2.Repository(str(self.cfg.git_cache))

    def _desired_head(self, head: str) -> str:
        """The newest commit from ``head`` back that is not only our own status."""
        repo, email = self.repo, self.cfg.git_author[1]
        commit = repo[head]
        while isinstance(commit, pygit2.Commit) and len(commit.parents) == 1 and \
                own_status_only(repo, str(commit.parents[0].id), str(commit.id), email):
            commit = commit.parents[0]
        return str(commit.id)

    def _verify(self, revision: str) -> str:
        r = self.cfg.repo
        if not r.verify_kind:
            return ""
        policy = SigningPolicy(r.verify_kind, r.allowed_signers, r.gpg_home, r.fingerprints)
        target = revision
        commit = self.repo[revision]
        # our own revert commits are not signed: check the human commit they build on
        while isinstance(commit, pygit2.Commit) and commit.author.email == \
                self.cfg.git_author[1] and commit.parents:
            commit = commit.parents[0]
            target = str(commit.id)
        try:
            verify(self.repo, target, policy)
        except PermanentError as e:
            return str(e)
        return ""

    def sync(self) -> SyncResult:
        return self.adopt(self.remote.sync())  # type: ignore[attr-defined]

    def refresh(self) -> SyncResult:
        return self.adopt(self.remote.head())  # type: ignore[attr-defined]

    def adopt(self, head: str) -> SyncResult:
        """Take ``head`` (the cache branch's head after a fetch) as the newest state."""
        with self._lock:
            if head == self._seen_head:
                return SyncResult(self._revision, False, self._rejection)
            self._seen_head = head
            desired = self._desired_head(head)
            if desired == self._revision:
                return SyncResult(desired, False, self._rejection)
            rejection = self._verify(desired)
            self._rejection = rejection
            if rejection:
                log.error("refusing revision %s: %s", desired[:12], rejection)
                return SyncResult(self._revision, True, rejection)
            self._revision = desired
            return SyncResult(desired, True)

    def publish(self, report: TickReport) -> None:
        cfg = self.cfg
        writer = StatusWriter(self.repo, f"refs/heads/{cfg.repo.branch}", cfg.git_author)
        sha = writer.write(_documents(report, self.reconciler, self._rejection),
                           _summary(report))
        if sha:
            log.info("status committed as %s", sha[:12])
        self.flush()

    def flush(self) -> None:
        self.remote.push()  # type: ignore[attr-defined]

    def pending(self) -> int:
        n: int = self.remote.pending()  # type: ignore[attr-defined]
        return n


@dataclass
class DirectorySource:
    """A plain directory, re-planned whenever a file in it changes (local development)."""

    cfg: DaemonConfig
    path: Path
    reconciler: Reconciler = field(init=False)
    _changed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.reconciler = local_reconciler(LocalSettings(
            repo=self.path, state_dir=Path(self.cfg.state_dir),
            prometheus_url=self.cfg.prometheus_url, git_author=self.cfg.git_author,
            terraform_cli_config=Path(self.cfg.terraform_cli_config)
            if self.cfg.terraform_cli_config else None))
        self._changed.set()

    def watch(self, stop: threading.Event, on_change: Callable[[], None]) -> threading.Thread:
        """Call ``on_change`` after every batch of file changes (a background thread)."""
        from watchfiles import watch

        def loop() -> None:
            for _ in watch(self.path, stop_event=stop, debounce=200, rust_timeout=500):
                self._changed.set()
                on_change()

        t = threading.Thread(target=loop, name="watch", daemon=True)
        t.start()
        return t

    def sync(self) -> SyncResult:
        changed = self._changed.is_set()
        self._changed.clear()
        return SyncResult(str(self.path), changed)

    def refresh(self) -> SyncResult:
        """Files are re-read every tick; a revert's checkout also wakes the watch."""
        return SyncResult(str(self.path), False)

    def publish(self, report: TickReport) -> None:
        out = Path(self.cfg.state_dir)
        for path, doc in _documents(report, self.reconciler, "").items():
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            old = target.read_bytes() if target.exists() else None
            new = render(old, doc)
            if new != old:
                target.write_bytes(new)

    def pending(self) -> int:
        return 0

    def flush(self) -> None:
        return None


def open_source(cfg: DaemonConfig) -> Source:
    """The source for ``cfg.repo.url``: a directory path without ``.git`` → watched
    directory; anything else → a Git remote."""
    url = cfg.repo.url
    local = Path(url)
    if "://" not in url and local.is_dir() and not (local / ".git").exists() and \
            not (local / "HEAD").exists():
        return DirectorySource(cfg, local.resolve())
    try:
        from reconciler.adapters.git.remote import RemoteAuth, RemoteRepo
    except ImportError as e:  # pragma: no cover - packaging error
        raise AdapterError(f"git remote support is missing: {e}") from None
    r = cfg.repo
    auth = RemoteAuth(username=r.username, password_file=r.password_file,
                      password_env=r.password_env, ssh_private_key=r.ssh_private_key,
                      known_hosts=r.known_hosts)
    url = str(local.resolve()) if "://" not in url and local.exists() else url
    remote = RemoteRepo(url, cfg.git_cache, branch=r.branch, auth=auth, author=cfg.git_author)
    head = remote.sync()
    source = GitSource(cfg, remote)
    source.adopt(head)
    return source
