"""A rollout-progress store in one JSON file (atomic replace), for a single host.

Holds per service and wave the version baking and its bake start, and a failed version
with its reason until the revert reaches the desired state. The Git status documents
carry the same facts for a fleet; this store is what a local daemon resumes from.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.core.live import WaveProgress, format_time, parse_time
from reconciler.core.versions import Version


class FileProgressStore:
    """Progress in ``path`` (created on first write); safe across threads and kill -9."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.path.read_text())
            return loaded
        except FileNotFoundError:
            return {}

    def _write(self, doc: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".progress-")  # 0600
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _update(self, service: str, wave: str, **fields: Any) -> None:
        with self._lock:
            doc = self._read()
            entry = doc.setdefault(service, {}).setdefault(wave, {})
            entry.update(fields)
            self._write(doc)

    def start_bake(self, service: str, wave: str, version: str, at: datetime) -> None:
        self._update(service, wave, version=version, bakeStartedAt=format_time(at))

    def record_failure(self, service: str, wave: str, version: str, reason: str) -> None:
        self._update(service, wave, failedVersion=version, failureReason=reason)

    def clear_failure(self, service: str, wave: str) -> bool:
        """Forget a failure once its revert is the desired state."""
        self._update(service, wave, failedVersion=None, failureReason="")
        return True

    def rollout(self) -> dict[str, dict[str, WaveProgress]]:
        """Everything recorded, as the live snapshot's rollout progress."""
        out: dict[str, dict[str, WaveProgress]] = {}
        for service, waves in self._read().items():
            for wave, e in waves.items():
                version = e.get("version") or e.get("failedVersion")
                if not version:
                    continue
                failed = e.get("failedVersion")
                out.setdefault(service, {})[wave] = WaveProgress(
                    Version.parse(version), parse_time(e.get("bakeStartedAt")),
                    Version.parse(failed) if failed else None, e.get("failureReason", ""))
        return out
