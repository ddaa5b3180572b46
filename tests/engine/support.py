"""Test support for the engine: desired states loaded from the fixture repository.

``fixtures/repo`` is a small fleet — waves canary [canary], zone [zone-a, zone-b] and
rest [rest], one cell per group (c1, a1, b1, r1), and one service ``app`` with a
Terraform stack and one manifest, released as 1.1.0 everywhere. Variants are copies
with files replaced, loaded through the same ``DirectorySource`` the CLI uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from reconciler.adapters.fs.source import DirectorySource
from reconciler.core.loader import LoadResult, load_repository
from reconciler.core.model import DesiredState

REPO = Path(__file__).parent / "fixtures" / "repo"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def release(version: str) -> str:
    """releases/app.yaml giving every group ``version``."""
    return ("apiVersion: reconciler.dev/v1\nkind: Release\nmetadata: {name: app}\n"
            "spec:\n  service: app\n  versions:\n"
            f"    - {{groups: [canary, zone-a, zone-b, rest], version: {version}}}\n")


def load(revision: str = "rev-a", root: Path = REPO) -> LoadResult:
    """The fixture repository (or a variant under ``root``) loaded as ``revision``."""
    return load_repository(DirectorySource(root, revision))


def desired(revision: str = "rev-a") -> DesiredState:
    """The fixture repository's desired state (it must be valid)."""
    result = load(revision)
    assert result.desired is not None, [str(e) for e in result.errors]
    return result.desired


def variant(tmp: Path, changes: Mapping[str, str]) -> Path:
    """A copy of the fixture repository under ``tmp`` with files replaced or added."""
    root = tmp / "repo"
    shutil.copytree(REPO, root)
    for path, text in changes.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root
