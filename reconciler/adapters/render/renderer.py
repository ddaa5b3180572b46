"""The tool renderer the composition root plugs into a desired state (``ToolRenderer``).

Owns: the incremental render cache — outcomes keyed by the hash of every input (the
chart's or base's files, the values files, the per-cell layer, the tool's binary and
version), in memory (bounded, least recently used out first) and on disk under the
daemon's state directory (bounded by entry count; oldest first out), so a restart
renders nothing that did not change — and running the misses: many cells of a service
per tool process (``batch.py``; a cell the batch cannot answer is rendered alone), in
parallel (``workers`` processes at once; the machine's cores by default).

A disk entry is the rendered text only, written atomically and read back only when its
name is the hash of its inputs; render failures are kept in memory only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.adapters.render.batch import (
    HELM_BATCH,
    KUSTOMIZE_BATCH,
    KUSTOMIZE_FRAMED_BATCH,
    cut,
    render_batch,
)
from reconciler.adapters.render.charts import ArchiveProblem, archive_path, read_archive, unpack
from reconciler.adapters.render.run import Binaries, Limits, Refused, render_once
from reconciler.core.toolrender import ToolRequest, ToolSource, helm_problems
from reconciler.core.yamldoc import Problem

Outcome = str | tuple[Problem, ...]
_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass
class DiskCache:
    """Rendered texts under ``root`` by key; at most ``max_entries`` files."""

    root: Path
    max_entries: int = 50_000
    _count: int = -1
    _marks: dict[str, set[str]] = field(default_factory=dict)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.yaml"

    def get(self, key: str) -> str | None:
        try:
            return self._path(key).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def _marks_file(self, mark: str) -> Path:
        return self.root / f"passed-{hashlib.sha256(mark.encode()).hexdigest()[:16]}.txt"

    def marked(self, mark: str) -> set[str]:
        """The keys marked ``mark`` (one file per mark, a key a line: one read, not one
        per key, when a new process checks 10,000 cells)."""
        found = self._marks.get(mark)
        if found is None:
            try:
                lines = self._marks_file(mark).read_text().split("\n")
            except (OSError, UnicodeDecodeError):
                lines = []
            found = self._marks[mark] = {k for k in lines if _KEY.fullmatch(k)}
        return found

    def has_mark(self, key: str, mark: str) -> bool:
        return key in self.marked(mark)

    def set_marks(self, keys: Sequence[str], mark: str) -> None:
        """Mark ``keys``: appended in one write; the file is cut back to the newest
        ``max_entries`` keys once it holds twice that."""
        known = self.marked(mark)
        new = [k for k in keys if k not in known]
        if not new:
            return
        known.update(new)
        path = self._marks_file(mark)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(path, "a") as f:
                f.write("".join(f"{k}\n" for k in new))
            if path.stat().st_size > 2 * self.max_entries * 65:
                keep = path.read_text().split("\n")[-self.max_entries - 1:]
                tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
                tmp.write_text("\n".join(keep))
                os.replace(tmp, path)
                self._marks.pop(mark, None)
        except OSError:
            return

    def put(self, key: str, text: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError:
            return
        if self._count < 0:
            self._count = sum(1 for _ in self.root.glob("*/*.yaml"))
        self._count += 1
        if self._count > self.max_entries:
            self.prune()

    def prune(self) -> None:
        """Drop the oldest entries down to 90% of the bound."""
        files = sorted(self.root.glob("*/*.yaml"), key=lambda p: p.stat().st_mtime)
        extra = len(files) - int(self.max_entries * 0.9)
        for p in files[:max(0, extra)]:
            with contextlib.suppress(OSError):
                p.unlink()
        self._count = len(files) - max(0, extra)


@dataclass
class ToolRenderers:
    """Renders requests with the real tools, through the memory and disk caches."""

    binaries: Binaries
    versions: dict[str, str]  # tool -> version text recorded in every key
    disk: DiskCache | None = None
    limits: Limits = field(default_factory=Limits)
    #: The operator's chart cache (``render.chart_cache``): pinned chart archives.
    charts: Path | None = None
    workers: int = max(1, os.cpu_count() or 1)
    max_memory: int = 20_000
    #: Cells per batch (1: a process per cell); see batch.py.
    helm_batch: int = HELM_BATCH
    kustomize_batch: int = KUSTOMIZE_BATCH
    renders: int = 0  # cells rendered (cache misses), for tests and benches
    tool_runs: int = 0  # tool processes started
    _memory: OrderedDict[str, Outcome] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _archives: dict[str, tuple[tuple[int, ...] | None,
                               tuple[tuple[str, str], ...] | Problem]] = field(default_factory=dict)

    def key(self, request: ToolRequest) -> str:
        tool = request.source.tool
        h = hashlib.sha256(f"{tool}\0{self.versions.get(tool, '?')}\0".encode())
        h.update(f"{self.limits.max_output}\0{request.digest}".encode())
        return h.hexdigest()

    def _remember(self, key: str, outcome: Outcome) -> None:
        with self._lock:
            self._memory[key] = outcome
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_memory:
                self._memory.popitem(last=False)

    def _cached(self, key: str) -> Outcome | None:
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                return hit
        text = self.disk.get(key) if self.disk is not None else None
        if text is not None:
            self._remember(key, text)
        return text

    def _render(self, key: str, request: ToolRequest) -> Outcome:
        with self._lock:
            self.renders += 1
            self.tool_runs += 1
        try:
            out: Outcome = render_once(request, self.binaries, self.limits)
        except Refused as e:
            out = e.problems
        except OSError as e:
            out = (Problem(request.source.root, 1, 1,
                           f"{request.source.tool} could not run: {e}"),)
        self._keep(key, out)
        return out

    def _keep(self, key: str, out: Outcome) -> None:
        if isinstance(out, str) and self.disk is not None:
            self.disk.put(key, out)
        self._remember(key, out)

    def _render_batch(self, keys: Sequence[str],
                      requests: Sequence[ToolRequest]) -> list[Outcome | None]:
        """A batch's outcomes, kept; None for a cell the batch could not answer."""
        with self._lock:
            self.tool_runs += 1
        try:
            outs = render_batch(requests, self.binaries, self.limits)
        except (OSError, Refused):
            return [None] * len(requests)
        for key, out in zip(keys, outs, strict=True):
            if out is not None:
                with self._lock:
                    self.renders += 1
                self._keep(key, out)
        return outs

    def _batches(self, requests: list[ToolRequest]) -> list[list[int]]:
        """The misses cut into batches of 2+ cells (at least one per worker)."""
        size = self.helm_batch if requests[0].source.tool == "helm" else \
            KUSTOMIZE_FRAMED_BATCH if self.binaries.kustomize_batch else self.kustomize_batch
        size = min(size, -(-len(requests) // self.workers))
        if size < 2:
            return []
        return [b for b in cut(requests, size) if len(b) > 1]

    def _render_misses(self, keys: list[str], requests: list[ToolRequest]) -> list[Outcome]:
        """Render the (distinct) misses of one tool: in batches where a batch can
        answer, the rest one by one; ``workers`` tool processes at once."""
        results: list[Outcome | None] = [None] * len(requests)
        batches = self._batches(requests)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for batch, outs in zip(batches, pool.map(lambda b: self._render_batch(
                    [keys[i] for i in b], [requests[i] for i in b]), batches), strict=True):
                for i, out in zip(batch, outs, strict=True):
                    results[i] = out
            alone = [i for i, r in enumerate(results) if r is None]
            run = pool.map if len(alone) > 1 else map
            for i, out in zip(alone, run(lambda i: self._render(keys[i], requests[i]),
                                         alone), strict=True):
                results[i] = out
        return [r for r in results if r is not None]

    def passed(self, requests: Sequence[ToolRequest], checker: str) -> list[bool]:
        """Which requests' outputs passed ``checker`` before (the disk remembers); never
        one whose chart archive is missing or changed."""
        if self.disk is None:
            return [False] * len(requests)
        marked = self.disk.marked(checker)
        return [not isinstance(r, tuple) and self.key(r) in marked
                for r in self._resolved(requests)]

    def mark_passed(self, requests: Sequence[ToolRequest], checker: str) -> None:
        if self.disk is not None:
            self.disk.set_marks([self.key(r) for r in requests], checker)

    def _resolve(self, source: ToolSource) -> ToolSource | tuple[Problem, ...]:
        """``source`` with its chart archive's files (unpacked once per archive file as
        long as that file is unchanged), or why the archive cannot be used."""
        archive = source.archive
        if archive is None:
            return source
        try:
            path = archive_path(archive, self.charts)
        except ArchiveProblem as e:
            return (e.problem,)
        try:
            st = path.stat()
            seen: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            seen = None
        memo_key = f"{archive.file_name}\0{archive.digest}"
        with self._lock:
            memo = self._archives.get(memo_key)
        if memo is None or seen is None or memo[0] != seen:
            try:
                memo = (seen, unpack(archive, read_archive(archive, self.charts)))
            except ArchiveProblem as e:
                memo = (seen, e.problem)
            with self._lock:
                self._archives[memo_key] = memo
                while len(self._archives) > 64:
                    self._archives.pop(next(iter(self._archives)))
        if isinstance(memo[1], Problem):
            return (memo[1],)
        resolved = replace(source, files=memo[1])
        refused = helm_problems(resolved)  # `lookup` in the archive's templates
        return tuple(refused) if refused else resolved

    def _resolved(self, requests: Sequence[ToolRequest]
                  ) -> list[ToolRequest | tuple[Problem, ...]]:
        """Each request with its chart archive unpacked, or why it cannot be."""
        sources: dict[str, ToolSource | tuple[Problem, ...]] = {}
        out: list[ToolRequest | tuple[Problem, ...]] = []
        for r in requests:
            if r.source.archive is None:
                out.append(r)
                continue
            got = sources.get(r.source.digest)
            if got is None:
                got = sources[r.source.digest] = self._resolve(r.source)
            out.append(got if isinstance(got, tuple) else replace(r, source=got))
        return out

    def render_many(self, requests: Sequence[ToolRequest]) -> list[Outcome]:
        resolved = self._resolved(requests)
        usable = [r for r in resolved if not isinstance(r, tuple)]
        rendered = iter(self._render_usable(usable) if usable else [])
        return [r if isinstance(r, tuple) else next(rendered) for r in resolved]

    def _render_usable(self, requests: Sequence[ToolRequest]) -> list[Outcome]:
        keys = [self.key(r) for r in requests]
        results: list[Outcome | None] = [self._cached(k) for k in keys]
        todo: dict[str, ToolRequest] = {}
        for k, r, out in zip(keys, requests, results, strict=True):
            if out is None:
                todo.setdefault(k, r)
        by_tool: dict[str, list[str]] = {}
        for k, r in todo.items():
            by_tool.setdefault(r.source.tool, []).append(k)
        done: dict[str, Outcome] = {}
        for tool_keys in by_tool.values():
            outs = self._render_misses(tool_keys, [todo[k] for k in tool_keys])
            done.update(zip(tool_keys, outs, strict=True))
        return [out if out is not None else done[k] for k, out in zip(keys, results,
                                                                      strict=True)]
