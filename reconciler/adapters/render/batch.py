"""Rendering many cells of one service in one tool process (the cold render of a large
fleet: a process per cell costs ~50-80 ms of CPU; a cell in a batch ~1-6 ms).

Owns: cutting the misses of one ``render_many`` into batches (one service's source per
batch; for Kustomize no two cells of a batch share a namespace or a name, which would be
an id conflict), running a batch contained as a single render is (work directory,
scrubbed environment, bubblewrap, deadline, output limit: ``run.py``) and splitting its
output back into each cell's text — the same bytes a single render of that cell gives
(tests/integration/render compares them on the real tools):

- Helm: ``helm-batch`` (hack/helm-batch, built from the same helm.sh/helm/v3 module as
  the ``helm`` binary) renders each cell as ``helm template`` does, one after the other,
  each framed ``<index> <ok|error|over> <length>``. The deadline is per cell (no frame
  for ``timeout`` seconds: that cell timed out, the process is killed, the cells after it
  go to the next batch); the output limit is per cell (``over``: the single render's
  message); a template error is that cell's, mapped to the repository as a single
  render's error is.
- Kustomize: ``kustomize-batch`` (hack/kustomize-batch, built from the kustomize/api
  module of the Kustomize kubectl embeds) builds each cell's overlay (the single render's,
  unchanged, beside one copy of the base) as ``kubectl kustomize`` does, framed and
  limited as Helm's; its errors map as a single render's. Without it: one generated
  top-level kustomization whose resources are the cells' overlays, run by ``kubectl
  kustomize``; each output document belongs to the cell its ``reconciler.dev/cell``
  label (set by that cell's overlay on every object) names. That batch's deadline is one
  render's; its output limit is one render's per cell, and a cell over it gets the
  single render's message.

Whatever a batch cannot attribute to a cell with certainty (the process failed, was
killed, wrote something unexpected) is answered ``None``: the caller renders those
cells one by one, so a failure still names its cell and its file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from reconciler.adapters.render.run import (
    Binaries,
    Limits,
    _env,
    _kill,
    _marker,
    _wrap,
    _write,
    execute,
    tool_problems,
)
from reconciler.core.toolrender import BASE_DIR, OVERLAY_DIR, ToolRequest
from reconciler.core.yamldoc import Problem

Outcome = str | tuple[Problem, ...]
#: Cells per batch (one generated kustomization's cost per cell grows with its cells:
#: ~50 is its best; ``kustomize-batch`` builds each cell on its own).
HELM_BATCH = 200
KUSTOMIZE_BATCH = 50
KUSTOMIZE_FRAMED_BATCH = 200
_FRAME = re.compile(rb"(\d+) (ok|error|over) (\d+)\n")
_CELL_LABEL = "reconciler.dev/cell"
_DOC_SEPARATOR = re.compile(r"(?m)^---\n")


def cut(requests: Sequence[ToolRequest], size: int) -> list[list[int]]:
    """Indexes of ``requests`` in batches of at most ``size``: one source per batch, no
    two cells of a batch with the same namespace or name."""
    batches: list[list[int]] = []
    open_: dict[str, list[tuple[list[int], set[str]]]] = {}  # batches not full yet
    for i, r in enumerate(requests):
        names = {f"ns:{r.namespace}", f"cell:{r.cell}"}
        slots = open_.setdefault(r.source.digest, [])
        for k, (members, used) in enumerate(slots):
            if not names & used:
                members.append(i)
                used |= names
                if len(members) >= size:
                    del slots[k]
                break
        else:
            batches.append([i])
            if size > 1:
                slots.append((batches[-1], set(names)))
    return batches


def over_limit(request: ToolRequest, limits: Limits) -> tuple[Problem, ...]:
    """The single render's answer to an output over the limit."""
    return (Problem(_marker(request), 1, 1, f"{request.source.tool} render: output over "
                    f"the limit of {limits.max_output} bytes; killed"),)


def timed_out(request: ToolRequest, limits: Limits) -> tuple[Problem, ...]:
    return (Problem(_marker(request), 1, 1, f"{request.source.tool} render: no result "
                    f"after {limits.timeout:g} s; killed"),)


def render_batch(requests: Sequence[ToolRequest], binaries: Binaries,
                 limits: Limits) -> list[Outcome | None]:
    """Each request's outcome, None where the batch could not say (render it alone)."""
    if not requests:
        return []
    if requests[0].source.tool == "helm":
        if binaries.helm_batch is None:
            return [None] * len(requests)
        return _helm(requests, binaries, limits)
    if binaries.kubectl is None and binaries.kustomize_batch is None:
        return [None] * len(requests)
    return _kustomize(requests, binaries, limits)


# -- Helm ----------------------------------------------------------------------------

def _helm(requests: Sequence[ToolRequest], binaries: Binaries,
          limits: Limits) -> list[Outcome | None]:
    return _framed(requests, lambda rest: _helm_once(rest, binaries, limits))


def _framed(requests: Sequence[ToolRequest],
            once: Callable[[Sequence[ToolRequest]], list[Outcome | None]]
            ) -> list[Outcome | None]:
    """``once`` over ``requests``; after a cell timed out (its process killed), the
    cells after it in a new process."""
    out: list[Outcome | None] = [None] * len(requests)
    start = 0
    while start < len(requests):
        done = once(requests[start:])
        for k, outcome in enumerate(done):
            out[start + k] = outcome
        stopped = next((k for k, o in enumerate(done) if o is None), len(done))
        if stopped == 0 or stopped == len(done) or not _is_timeout(done[stopped - 1]):
            break
        start += stopped
    return out


def _is_timeout(outcome: Outcome | None) -> bool:
    return isinstance(outcome, tuple) and "no result after" in outcome[0].message


def _helm_once(requests: Sequence[ToolRequest], binaries: Binaries,
               limits: Limits) -> list[Outcome | None]:
    assert binaries.helm_batch is not None
    src = requests[0].source
    work = Path(tempfile.mkdtemp(prefix="reconciler-render-"))
    try:
        for rel, text in src.files:
            _write(work / "chart", rel, text)
        values = []
        for i, (_, text) in enumerate(src.values):
            _write(work / "values", f"{i}.yaml", text)
            values.append(str(work / "values" / f"{i}.yaml"))
        jobs = []
        for k, r in enumerate(requests):
            _write(work / "cells", f"{k}.yaml", r.layer)
            jobs.append({"release": src.release, "namespace": r.namespace,
                         "chart": str(work / "chart"),
                         "values": [*values, str(work / "cells" / f"{k}.yaml")]})
        _write(work, "jobs.json", json.dumps({"maxOutput": limits.max_output, "jobs": jobs}))
        frames = _stream([str(binaries.helm_batch), "render", str(work / "jobs.json")],
                         work, limits, binaries.bwrap, len(requests))
        return _outcomes(requests, frames, limits, lambda k, text: tuple(tool_problems(
            requests[k], "Error: " + text.replace(str(work / "cells" / f"{k}.yaml"),
                                                  str(work / "cell-values.yaml")), work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _outcomes(requests: Sequence[ToolRequest], frames: _Frames, limits: Limits,
              error: Callable[[int, str], tuple[Problem, ...]]) -> list[Outcome | None]:
    """Each cell's outcome from its frame (``error``: a cell's failure, from the index and
    the tool's message, as a single render reports it); None for a cell not answered."""
    out: list[Outcome | None] = [None] * len(requests)
    for k, (status, payload) in enumerate(frames.done):
        if status == "ok":
            out[k] = payload.decode(errors="replace")
        elif status == "over":
            out[k] = over_limit(requests[k], limits)
        else:
            out[k] = error(k, payload.decode(errors="replace"))
    if frames.timed_out and len(frames.done) < len(requests):
        out[len(frames.done)] = timed_out(requests[len(frames.done)], limits)
    return out


class _Frames:
    """What a ``helm-batch`` process answered so far."""

    def __init__(self) -> None:
        self.done: list[tuple[str, bytes]] = []
        self.timed_out = False
        self.bad = False
        self.progress = threading.Event()


def _read_frames(stream: IO[bytes], frames: _Frames, expected: int, cap: int,
                 stop: Callable[[], None]) -> None:
    """Frames as they come; anything else (or more than ``cap`` bytes) stops the run."""
    while len(frames.done) < expected:
        header = stream.readline(64)
        m = _FRAME.fullmatch(header)
        if not m or int(m.group(1)) != len(frames.done) or int(m.group(3)) > cap:
            frames.bad = bool(header)
            break
        size = int(m.group(3))
        payload = stream.read(size) if size else b""
        if len(payload) != size:
            frames.bad = True
            break
        frames.done.append((m.group(2).decode(), payload))
        frames.progress.set()
    if frames.bad:
        stop()
    frames.progress.set()


def _stream(argv: list[str], work: Path, limits: Limits, bwrap: str | None,
            expected: int) -> _Frames:
    """Run ``helm-batch`` or ``kustomize-batch``; every cell must be answered within
    ``limits.timeout`` of the one before (else the process is killed and ``timed_out``
    set)."""
    proc = subprocess.Popen(_wrap(argv, work, bwrap), cwd=work, env=_env(work),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, close_fds=True,
                            start_new_session=True)
    frames = _Frames()
    assert proc.stdout is not None
    reader = threading.Thread(target=_read_frames, daemon=True,
                              args=(proc.stdout, frames, expected,
                                    limits.max_output + 1, lambda: _kill(proc)))
    reader.start()
    try:
        seen, deadline = 0, time.monotonic() + limits.timeout
        while reader.is_alive():
            frames.progress.wait(max(0.0, min(deadline - time.monotonic(), 0.25)))
            frames.progress.clear()
            if len(frames.done) != seen:
                seen, deadline = len(frames.done), time.monotonic() + limits.timeout
            elif reader.is_alive() and time.monotonic() >= deadline:
                frames.timed_out = True
                _kill(proc)
                break
    finally:
        reader.join(5)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.wait()
        proc.stdout.close()
    return frames


# -- Kustomize -----------------------------------------------------------------------

def _kustomize(requests: Sequence[ToolRequest], binaries: Binaries,
               limits: Limits) -> list[Outcome | None]:
    if binaries.kustomize_batch is not None:
        return _framed(requests, lambda rest: _kustomize_once(rest, binaries, limits))
    assert binaries.kubectl is not None
    src = requests[0].source
    work = Path(tempfile.mkdtemp(prefix="reconciler-render-"))
    try:
        top = work / "o"
        for rel, text in src.files:
            _write(top / BASE_DIR, rel, text)
        for k, r in enumerate(requests):  # the overlay's ../base is top/base
            _write(top / f"c{k}", "kustomization.yaml", r.layer)
        _write(top, "kustomization.yaml", json.dumps(
            {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
             "resources": [f"c{k}" for k in range(len(requests))]}))
        batch_limits = Limits(limits.timeout, limits.max_output * len(requests))
        code, out, _, stopped = execute(
            [str(binaries.kubectl), "kustomize", str(top),
             "--load-restrictor", "LoadRestrictionsRootOnly"], work, batch_limits,
            binaries.bwrap)
        if stopped or code != 0:
            return [None] * len(requests)
        return split_kustomize(requests, out, limits)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kustomize_once(requests: Sequence[ToolRequest], binaries: Binaries,
                    limits: Limits) -> list[Outcome | None]:
    """``kustomize-batch``: each cell's overlay (the single render's, unchanged) beside
    one copy of the base, built one after the other and answered separately."""
    assert binaries.kustomize_batch is not None
    src = requests[0].source
    work = Path(tempfile.mkdtemp(prefix="reconciler-render-"))
    try:
        for rel, text in src.files:
            _write(work / BASE_DIR, rel, text)
        dirs = [work / f"c{k:05d}" for k in range(len(requests))]  # none a prefix of another
        for d, r in zip(dirs, requests, strict=True):  # the overlay's ../base is work/base
            _write(d, "kustomization.yaml", r.layer)
        _write(work, "jobs.json", json.dumps({"maxOutput": limits.max_output,
                                              "jobs": [{"dir": str(d)} for d in dirs]}))
        frames = _stream([str(binaries.kustomize_batch), "render", str(work / "jobs.json")],
                         work, limits, binaries.bwrap, len(requests))
        return _outcomes(requests, frames, limits, lambda k, text: tuple(tool_problems(
            requests[k], "error: " + text.replace(str(dirs[k]), str(work / OVERLAY_DIR)),
            work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def split_kustomize(requests: Sequence[ToolRequest], text: str,
                    limits: Limits) -> list[Outcome | None]:
    """Each cell's documents of a batch's output, in the output's order (None for every
    cell when a document cannot be attributed to exactly one cell of the batch)."""
    index = {r.cell: k for k, r in enumerate(requests)}
    docs: list[list[str]] = [[] for _ in requests]
    for doc in _DOC_SEPARATOR.split(text):
        if not doc:
            continue
        k = index.get(_cell_of(doc), -1)
        if k < 0:
            return [None] * len(requests)
        docs[k].append(doc)
    out: list[Outcome | None] = []
    for k, r in enumerate(requests):
        cell_text = "---\n".join(docs[k])
        out.append(over_limit(r, limits) if len(cell_text.encode()) > limits.max_output
                   else cell_text)
    return out


def _cell_of(doc: str) -> str:
    try:
        obj: Any = yaml.load(doc, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return ""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    cell = labels.get(_CELL_LABEL) if isinstance(labels, dict) else None
    return cell if isinstance(cell, str) else ""
