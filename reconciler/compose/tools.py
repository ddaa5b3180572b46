"""The manifest tools (Helm, Kustomize) every load and render of the composition root uses.

Owns: finding the binaries (``localparts.helm``), where the incremental render cache
lives — under the daemon's state directory (``render-cache/``) for `reconciler run`;
for the one-shot commands (`validate`, `plan`, `diff`) under
``$RECONCILER_RENDER_CACHE`` or ``~/.cache/reconciler/render`` (``off``: memory only) —
and sharing one renderer (and so its memory cache) per cache directory in a process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.render import ToolRenderers, make_renderers
from reconciler.core.toolrender import ToolRequest
from reconciler.core.yamldoc import Problem
from reconciler.localparts.helm import find_helm, find_helm_batch, find_kubectl


@dataclass
class LazyTools:
    """The renderer, made at its first render (finding the binaries and their versions
    costs a few hundred ms a repository without charts never pays)."""

    cache: Path | None
    _made: list[ToolRenderers] = field(default_factory=list)

    def get(self) -> ToolRenderers:
        with _LOCK:
            if not self._made:
                self._made.append(make_renderers(find_helm(), find_kubectl(), self.cache,
                                                 helm_batch=find_helm_batch()))
            return self._made[0]

    def render_many(self, requests: Sequence[ToolRequest]) -> list[str | tuple[Problem, ...]]:
        return self.get().render_many(requests)

    def passed(self, requests: Sequence[ToolRequest], checker: str) -> list[bool]:
        return self.get().passed(requests, checker)

    def mark_passed(self, requests: Sequence[ToolRequest], checker: str) -> None:
        self.get().mark_passed(requests, checker)


_SHARED: dict[str, LazyTools] = {}
_LOCK = threading.Lock()


def _user_cache() -> Path | None:
    where = os.environ.get("RECONCILER_RENDER_CACHE")
    if where == "off":
        return None
    if where:
        return Path(where)
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    return root / "render"


def manifest_tools(state_dir: Path | None = None) -> LazyTools:
    """The renderer whose disk cache is ``state_dir/render-cache`` (the daemon's), or the
    user's cache when ``state_dir`` is None."""
    cache = state_dir / "render-cache" if state_dir is not None else _user_cache()
    key = str(cache)
    with _LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = LazyTools(cache)
        return found
