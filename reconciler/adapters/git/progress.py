"""Rollout progress kept in Git: ``<status dir>/rollouts/<service>.yaml`` on the daemon's
branch (the status directory is the live Fleet's ``status.path``, ``status`` by default).

Owns: the bake start and the failed version of each wave, read from and committed to the
status documents, so that a restarted daemon (or another replica) resumes from Git. A
bake start or a failure is committed at once (it must survive a kill -9 before the end of
the tick); the daemon pushes it with the tick's other commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pygit2
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.revert import TRAILER as ROLLBACK_TRAILER
from reconciler.adapters.git.sign import Signer
from reconciler.adapters.git.status import STATUS_TRAILER, fixed_target
from reconciler.core.live import WaveProgress, format_time, parse_time
from reconciler.core.statusdocs import StatusTarget
from reconciler.core.statusyaml import render
from reconciler.core.versions import Version
from reconciler.core.yamldoc import YamlProblem, checked_text


def _wave_progress(entry: Any) -> WaveProgress | None:
    if not isinstance(entry, dict):
        return None
    version = entry.get("version") or entry.get("failedVersion")
    if not version:
        return None
    failed = entry.get("failedVersion")
    try:
        return WaveProgress(Version.parse(str(version)), parse_time(entry.get("bakeStartedAt")),
                            Version.parse(str(failed)) if failed else None,
                            str(entry.get("failureReason") or ""))
    except ValueError:
        return None


class GitProgressStore:
    """Progress in the rollout status documents of ``ref``; ``target`` says, at each read
    and write, where status lives and who authors it (default: ``status/`` by
    ``author``): the desired state, and with it the status directory, can change between
    ticks. Every commit is signed by ``signer`` when given. ``pushed_ref`` is what the
    remote is known to hold (the cache's tracking ref), when ``ref`` is a push queue."""

    def __init__(self, repo: pygit2.Repository, ref: str, author: tuple[str, str],
                 target: Callable[[], StatusTarget] | None = None,
                 signer: Signer | None = None, pushed_ref: str | None = None) -> None:
        self.repo = repo
        self.pushed_ref = pushed_ref
        self.ref = ref
        self.author = author
        self.target = target or fixed_target(author)
        self.signer = signer
        self._lock = threading.Lock()

    def _rollouts(self) -> str:
        return f"{self.target().directory}/rollouts"

    def _doc(self, service: str, rollouts: str) -> dict[str, Any]:
        text = read_file(self.repo, head_commit(self.repo, self.ref),
                         f"{rollouts}/{service}.yaml")
        if not text:
            return {}
        try:
            doc = YAML(typ="safe").load(checked_text(f"{rollouts}/{service}.yaml", text))
        except (YAMLError, YamlProblem):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _update(self, service: str, wave: str, what: str, **fields: Any) -> None:
        with self._lock:
            target = self.target()
            rollouts = f"{target.directory}/rollouts"
            path = f"{rollouts}/{service}.yaml"
            head = head_commit(self.repo, self.ref)
            doc = self._doc(service, rollouts)
            doc.setdefault("service", service)
            waves = doc.setdefault("waves", {})
            entry = waves.setdefault(wave, {}) if isinstance(waves, dict) else {}
            entry.update({k: v for k, v in fields.items() if v is not None})
            text = render(read_file(self.repo, head, path), doc)
            message = f"status: {service} {what} in {wave}\n\n{STATUS_TRAILER}\n"
            commit_files(self.repo, self.ref, {path: text}, message,
                         pygit2.Signature(*target.author), self.signer)

    def start_bake(self, service: str, wave: str, version: str, at: datetime) -> None:
        self._update(service, wave, f"{version} baking", version=version,
                     bakeStartedAt=format_time(at))

    def record_failure(self, service: str, wave: str, version: str, reason: str) -> None:
        self._update(service, wave, f"{version} failed", failedVersion=version,
                     failureReason=reason)

    def clear_failure(self, service: str, wave: str) -> bool:
        """Forget the wave's failure (its revert is desired now): an empty failed version
        reads back as none. Kept (False) while a revert of ``service`` waits in the queue
        (commits ``pushed_ref`` lacks): should it not replay on the remote's new head,
        the failure must still be on record to hold the version back."""
        if self._revert_queued(service):
            return False
        self._update(service, wave, "failure forgotten", failedVersion="",
                     failureReason="")
        return True

    def _revert_queued(self, service: str) -> bool:
        head = head_commit(self.repo, self.ref)
        if self.pushed_ref is None or head is None:
            return False
        try:
            pushed = self.repo.references[self.pushed_ref].resolve().target
        except KeyError:
            return False  # not a push queue (nothing fetched yet)
        walker = self.repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pushed)
        return any(c.message.startswith(f"Roll back {service} ") and
                   f"\n{ROLLBACK_TRAILER}: " in c.message for c in walker)

    def rollout(self) -> dict[str, dict[str, WaveProgress]]:
        """Every wave's progress recorded at the branch head."""
        head = head_commit(self.repo, self.ref)
        out: dict[str, dict[str, WaveProgress]] = {}
        if head is None:
            return out
        path = self._rollouts()
        try:
            tree = self.repo[head.tree[path].id]
        except KeyError:
            return out
        names = [e.name for e in tree] if isinstance(tree, pygit2.Tree) else []
        for name in names:
            if not name or not name.endswith(".yaml"):
                continue
            service = name[:-5]
            waves = self._doc(service, path).get("waves")
            found = {str(w): p for w, e in (waves.items() if isinstance(waves, dict) else [])
                     if (p := _wave_progress(e)) is not None}
            if any(p.failed_version for p in found.values()) and self._revert_queued(service):
                found = {w: replace(p, revert_pending=bool(p.failed_version))
                         for w, p in found.items()}
            if found:
                out[service] = found
        return out
