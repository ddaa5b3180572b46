"""Status documents written as files under a directory (the watched-directory mode).

Owns: merging each document into the file already there (comments survive) and writing
only the files whose text changes. The twin of ``adapters.git.status.StatusWriter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.adapters.errors import PermanentError
from reconciler.core.statusyaml import render


class FileStatusWriter:
    """Writes status documents (paths relative to ``root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _target(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise PermanentError(f"{path}: a status document must stay under {self.root}")
        return target

    def write(self, docs: Mapping[str, Mapping[str, Any]], summary: str) -> str | None:
        """Write every changed document; None (there is no commit id here)."""
        for path, doc in docs.items():
            target = self._target(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            old = target.read_bytes() if target.exists() else None
            new = render(old, doc)
            if new != old:
                target.write_bytes(new)
        return None
