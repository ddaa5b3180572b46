"""The manifest tools (Helm, Kustomize) every load and render of the composition root uses.

Owns: finding the binaries (``localparts.helm``), where the incremental render cache
lives — under the daemon's state directory (``render-cache/``) for `reconciler run`;
for the one-shot commands (`validate`, `plan`, `diff`) under
``$RECONCILER_RENDER_CACHE`` or ``~/.cache/reconciler/render`` (``off``: memory only) —
the operator's render settings (``render:`` of the daemon's configuration: the time and
output limits of one render, the chart cache of pinned chart archives; for the one-shot
commands ``$RECONCILER_RENDER_TIMEOUT``, ``$RECONCILER_RENDER_MAX_OUTPUT`` and
``$RECONCILER_CHART_CACHE``), where the one-shot commands keep what they parsed
(``parse_cache_dir``), and sharing one renderer (and so its memory cache) per
cache directory and settings in a process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.render import Limits, ToolRenderers, make_renderers
from reconciler.core.toolrender import ToolRequest
from reconciler.core.yamldoc import Problem
from reconciler.localparts.helm import (
    find_helm,
    find_helm_batch,
    find_kubectl,
    find_kustomize_batch,
)


@dataclass(frozen=True)
class RenderSettings:
    """What the operator configures for rendering charts and Kustomize directories."""

    limits: Limits = field(default_factory=Limits)
    #: The directory of pinned chart archives (``<name>-<version>.tgz``); None: none.
    chart_cache: Path | None = None


def settings_from_env(env: Mapping[str, str] = os.environ) -> RenderSettings:
    """The one-shot commands' render settings (defaults, or the environment's)."""
    limits = Limits()
    try:
        timeout = float(env.get("RECONCILER_RENDER_TIMEOUT", limits.timeout))
        max_output = int(env.get("RECONCILER_RENDER_MAX_OUTPUT", limits.max_output))
    except ValueError:
        raise PermanentError("RECONCILER_RENDER_TIMEOUT (seconds) and "
                             "RECONCILER_RENDER_MAX_OUTPUT (bytes) must be numbers") from None
    charts = env.get("RECONCILER_CHART_CACHE")
    return RenderSettings(Limits(timeout, max_output), Path(charts) if charts else None)


@dataclass
class LazyTools:
    """The renderer, made at its first render (finding the binaries and their versions
    costs a few hundred ms a repository without charts never pays)."""

    cache: Path | None
    settings: RenderSettings = field(default_factory=RenderSettings)
    _made: list[ToolRenderers] = field(default_factory=list)

    def get(self) -> ToolRenderers:
        with _LOCK:
            if not self._made:
                made = make_renderers(find_helm(), find_kubectl(), self.cache,
                                      self.settings.limits, helm_batch=find_helm_batch(),
                                      kustomize_batch=find_kustomize_batch())
                made.charts = self.settings.chart_cache
                self._made.append(made)
            return self._made[0]

    def render_many(self, requests: Sequence[ToolRequest]) -> list[str | tuple[Problem, ...]]:
        return self.get().render_many(requests)

    def passed(self, requests: Sequence[ToolRequest], checker: str) -> list[bool]:
        return self.get().passed(requests, checker)

    def mark_passed(self, requests: Sequence[ToolRequest], checker: str) -> None:
        self.get().mark_passed(requests, checker)


_SHARED: dict[str, LazyTools] = {}
_LOCK = threading.Lock()


def parse_cache_dir() -> Path | None:
    """Where the one-shot commands keep what they parsed (``adapters.fs.parsecache``):
    ``$RECONCILER_PARSE_CACHE``, or ``parse/`` beside the render cache
    (``$RECONCILER_CACHE``, by default ``~/.cache/reconciler``); ``off``: none."""
    return _cache_dir("RECONCILER_PARSE_CACHE", "parse")


def _user_cache() -> Path | None:
    return _cache_dir("RECONCILER_RENDER_CACHE", "render")


def _cache_dir(variable: str, name: str) -> Path | None:
    """``$variable`` (``off``: None), else ``name`` under ``$RECONCILER_CACHE``."""
    where = os.environ.get(variable)
    if where == "off":
        return None
    if where:
        return Path(where)
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    return root / name


def manifest_tools(state_dir: Path | None = None,
                   settings: RenderSettings | None = None) -> LazyTools:
    """The renderer whose disk cache is ``state_dir/render-cache`` (the daemon's), or the
    user's cache when ``state_dir`` is None; ``settings``: the operator's (None: the
    environment's, as for the one-shot commands)."""
    cache = state_dir / "render-cache" if state_dir is not None else _user_cache()
    settings = settings if settings is not None else settings_from_env()
    key = f"{cache}\0{settings}"
    with _LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = LazyTools(cache, settings)
        return found
