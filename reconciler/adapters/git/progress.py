"""Rollout progress kept in Git: ``status/rollouts/<service>.yaml`` on the daemon's branch.

Owns: the bake start and the failed version of each wave, read from and committed to the
status documents, so that a restarted daemon (or another replica) resumes from Git. A
bake start or a failure is committed at once (it must survive a kill -9 before the end of
the tick); the daemon pushes it with the tick's other commits.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pygit2
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.adapters.git.commits import commit_files, head_commit, read_file
from reconciler.adapters.git.status import STATUS_TRAILER
from reconciler.core.live import WaveProgress, format_time, parse_time
from reconciler.core.statusyaml import render
from reconciler.core.versions import Version

ROLLOUTS = "status/rollouts/"


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
    """Progress in the rollout status documents of ``ref``."""

    def __init__(self, repo: pygit2.Repository, ref: str, author: tuple[str, str]) -> None:
        self.repo = repo
        self.ref = ref
        self.author = author
        self._lock = threading.Lock()

    def _doc(self, service: str) -> dict[str, Any]:
        text = read_file(self.repo, head_commit(self.repo, self.ref), f"{ROLLOUTS}{service}.yaml")
        if not text:
            return {}
        try:
            doc = YAML(typ="safe").load(text.decode())
        except (YAMLError, UnicodeDecodeError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _update(self, service: str, wave: str, what: str, **fields: Any) -> None:
        with self._lock:
            path = f"{ROLLOUTS}{service}.yaml"
            head = head_commit(self.repo, self.ref)
            doc = self._doc(service)
            doc.setdefault("service", service)
            waves = doc.setdefault("waves", {})
            entry = waves.setdefault(wave, {}) if isinstance(waves, dict) else {}
            entry.update({k: v for k, v in fields.items() if v is not None})
            text = render(read_file(self.repo, head, path), doc)
            message = f"status: {service} {what} in {wave}\n\n{STATUS_TRAILER}\n"
            commit_files(self.repo, self.ref, {path: text}, message,
                         pygit2.Signature(*self.author))

    def start_bake(self, service: str, wave: str, version: str, at: datetime) -> None:
        self._update(service, wave, f"{version} baking", version=version,
                     bakeStartedAt=format_time(at))

    def record_failure(self, service: str, wave: str, version: str, reason: str) -> None:
        self._update(service, wave, f"{version} failed", failedVersion=version,
                     failureReason=reason)

    def rollout(self) -> dict[str, dict[str, WaveProgress]]:
        """Every wave's progress recorded at the branch head."""
        head = head_commit(self.repo, self.ref)
        out: dict[str, dict[str, WaveProgress]] = {}
        if head is None:
            return out
        try:
            rollouts = self.repo[head.tree[ROLLOUTS.rstrip("/")].id]
        except KeyError:
            return out
        names = [e.name for e in rollouts] if isinstance(rollouts, pygit2.Tree) else []
        for name in names:
            if not name or not name.endswith(".yaml"):
                continue
            service = name[:-5]
            waves = self._doc(service).get("waves")
            for wave, e in (waves.items() if isinstance(waves, dict) else []):
                p = _wave_progress(e)
                if p is not None:
                    out.setdefault(service, {})[str(wave)] = p
        return out
