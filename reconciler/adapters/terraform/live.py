"""The Terraform part of the live snapshot, read from the workspaces' records.

Owns: reading each workspace's record of its last apply (``applied.json``), and
``Records``, which the daemon's runner keeps: a record is parsed again only when its
file changed (its inode, size, modification or change time), and each workspace's path
is proven inside the state directory once (``workspace_for``), not at every tick — at
1,000 cells those path checks and parses were most of the Terraform read.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.adapters.terraform.engine import Engine, TerraformSettings
from reconciler.adapters.terraform.workspace import RECORD, workspace_for
from reconciler.core.live import TerraformLive
from reconciler.core.model import DesiredState

Stat = tuple[int, int, int, int, int]


def _live(record: dict[str, Any]) -> TerraformLive:
    return TerraformLive(record.get("inputHash"), bool(record.get("drifted")),
                         dict(record.get("outputs", {})))


def terraform_live(desired: DesiredState, settings: TerraformSettings,
                   engine: Engine) -> dict[str, dict[str, TerraformLive]]:
    """cell -> service -> applied input hash, drift flag, non-sensitive outputs.

    Cheap: reads each workspace's record; drift itself is found by ``check_drift``.
    """
    return Records(settings, engine)(desired)


@dataclass
class Records:
    """``terraform_live`` that re-reads only the records whose file changed."""

    settings: TerraformSettings
    engine: Engine
    _roots: dict[tuple[str, str], Path] = field(default_factory=dict)
    _seen: dict[Path, tuple[Stat, TerraformLive | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, desired: DesiredState) -> dict[str, dict[str, TerraformLive]]:
        with self._lock:
            out: dict[str, dict[str, TerraformLive]] = {}
            seen: dict[Path, tuple[Stat, TerraformLive | None]] = {}
            for svc in sorted(n for n, s in desired.services.items() if s.terraform):
                for cell in sorted(desired.cells):
                    live = self._read(self._root(svc, cell) / RECORD, seen)
                    if live is not None:
                        out.setdefault(cell, {})[svc] = live
            self._seen = seen  # only what this read used
            return out

    def _root(self, service: str, cell: str) -> Path:
        root = self._roots.get((service, cell))
        if root is None:
            root = workspace_for(self.settings, self.engine, service, cell).root
            if len(self._roots) > 65536:
                self._roots.clear()
            self._roots[(service, cell)] = root
        return root

    def _read(self, path: Path, seen: dict[Path, tuple[Stat, TerraformLive | None]]
              ) -> TerraformLive | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:  # never applied
            return None
        stat = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev)
        before = self._seen.get(path)
        if before is not None and before[0] == stat:
            seen[path] = before
            return before[1]
        try:
            loaded = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):  # as ``Workspace.record``
            loaded = {}
        live = _live(loaded) if isinstance(loaded, dict) and loaded else None
        seen[path] = (stat, live)
        return live
