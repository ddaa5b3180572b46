"""Where the daemon's desired revisions come from, and where its status goes.

Owns: the two sources ``reconciler run`` knows — a Git remote (fetched into a bare cache,
status and reverts committed to the cache's branch and pushed) and a plain directory
(watched with watchfiles; status kept in the state directory) — behind one small
interface the daemon drives. Each is given a built reconciler and its Git or file
parts by ``reconciler.compose``; nothing here builds an adapter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.core.statusdocs import owned_documents, status_directory, status_documents
from reconciler.engine.executor import OutcomeStatus
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


class GitRemote(Protocol):
    """The remote's bare cache (``adapters.git.remote.RemoteRepo``)."""

    def sync(self) -> str:
        """Fetch; our unpushed commits are replayed on top; the branch head after."""
        ...

    def head(self) -> str:
        """The cache branch's head, without a fetch."""
        ...

    def push(self) -> bool:
        """Push what is queued; False when it stays queued."""
        ...

    def pending(self) -> int:
        ...


class RevisionHistory(Protocol):
    """Which commit is desired, and whether it may be (``adapters.git.history``)."""

    def desired_head(self, head: str) -> str:
        ...

    def verify(self, revision: str) -> str:
        """Why ``revision`` is refused ("" when it is not)."""
        ...


class StatusSink(Protocol):
    """Writes the tick's status documents; the commit id when one was made."""

    def write(self, docs: Mapping[str, Mapping[str, object]], summary: str) -> str | None:
        ...


def _summary(report: TickReport) -> str:
    done = [o for o in report.outcomes if o.status == OutcomeStatus.DONE]
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
    good = reconciler.last_good
    directory = status_directory(good.fleet.status if good else None)
    docs = status_documents(report.plan, report.live, rollout, report.revision, last_good,
                            errors, directory)
    if reconciler.owns is not None and good is not None:
        return owned_documents(docs, directory, reconciler.owns(good))
    return docs


@dataclass
class GitSource:
    """A remote repository, fetched into a bare cache under the state directory."""

    remote: GitRemote
    history: RevisionHistory
    status: StatusSink
    reconciler: Reconciler
    _revision: str | None = None
    _seen_head: str | None = None
    _rejection: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def revision(self) -> str | None:
        """The desired revision the reconciler loads (None until one is accepted)."""
        return self._revision

    def sync(self) -> SyncResult:
        return self.adopt(self.remote.sync())

    def refresh(self) -> SyncResult:
        return self.adopt(self.remote.head())

    def adopt(self, head: str) -> SyncResult:
        """Take ``head`` (the cache branch's head after a fetch) as the newest state."""
        with self._lock:
            if head == self._seen_head:
                return SyncResult(self._revision, False, self._rejection)
            self._seen_head = head
            desired = self.history.desired_head(head)
            if desired == self._revision:
                return SyncResult(desired, False, self._rejection)
            rejection = self.history.verify(desired)
            self._rejection = rejection
            if rejection:
                log.error("refusing revision %s: %s", desired[:12], rejection)
                return SyncResult(self._revision, True, rejection)
            self._revision = desired
            return SyncResult(desired, True)

    def publish(self, report: TickReport) -> None:
        sha = self.status.write(_documents(report, self.reconciler, self._rejection),
                                _summary(report))
        if sha:
            log.info("status committed as %s", sha[:12])
        self.flush()

    def flush(self) -> None:
        self.remote.push()

    def pending(self) -> int:
        return self.remote.pending()


@dataclass
class WatchedDirectory:
    """A plain directory, re-planned whenever a file in it changes (local development)."""

    path: Path
    status: StatusSink
    reconciler: Reconciler
    _changed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
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
        """Files are re-read every tick."""
        return SyncResult(str(self.path), False)

    def publish(self, report: TickReport) -> None:
        self.status.write(_documents(report, self.reconciler, ""), _summary(report))

    def pending(self) -> int:
        return 0

    def flush(self) -> None:
        return None
