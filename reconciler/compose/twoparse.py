"""Parsing a cold revision's YAML in two processes (``reconciler diff``).

Owns: splitting the texts a load parses (``core.loader.ParseTexts``) between this
process and one forked child, on a machine with two or more CPUs, for a batch large
enough to pay for the fork (a fleet's first load: 10,000 cell files). The child runs
the loader's own ``parse_text`` on its share — the same parser and limits, and the
quick schema check whose "valid" this process then need not repeat — and hands back
plain values (what YAML builds: mappings, lists, strings, numbers, booleans, null,
dates and times, bytes, sets), refusals and verdicts as plain tuples, read back by an
unpickler that can build nothing else. Any trouble with the child — it could not
start, died, sent something unreadable — and this process parses that share itself:
the outcome is the same either way, only the time differs. Schema errors (with their
positions) and model building stay in this process.
"""

from __future__ import annotations

import datetime
import io
import os
import pickle
import signal
import threading
from collections.abc import Generator, Sequence
from typing import Any

from reconciler.core.loader import TextOutcome, parse_text, parse_texts
from reconciler.core.yamldoc import Problem

#: Fewer texts than this are parsed here alone: a fork and the hand-back cost more.
MIN_TEXTS = 2_000
#: The child's share of the texts: more than half, as this process also builds every
#: document's model value, which it does for its own share while the child parses.
CHILD_SHARE = 0.55
#: What the child's values may hold besides the pickle protocol's own types.
_DATETIME = frozenset({"date", "datetime", "time", "timedelta", "timezone"})


class _ValuesOnly(pickle.Unpickler):
    """Reads plain values back: no class but ``datetime``'s can be named."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "datetime" and name in _DATETIME:
            return getattr(datetime, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a YAML value")


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def _child(texts: Sequence[tuple[str, bytes]], out: int) -> None:
    """In the forked child: parse, write the outcome to ``out``, exit (never returns)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends it quietly
        values = [(doc, None if p is None else (p.path, p.line, p.col, p.message), valid)
                  for doc, p, valid in parse_texts(texts)]
        with os.fdopen(out, "wb") as f:
            pickle.dump(values, f, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    finally:
        os._exit(code)  # no atexit handler, no buffered output of the parent's


def _read_back(data: bytes, n: int) -> list[TextOutcome] | None:
    """The child's outcome for its ``n`` texts, or None when it is not that."""
    try:
        values = _ValuesOnly(io.BytesIO(data)).load()
    except Exception:  # anything unreadable: parse here instead
        return None
    if not isinstance(values, list) or len(values) != n:
        return None
    out: list[TextOutcome] = []
    for item in values:
        if not isinstance(item, tuple) or len(item) != 3 or not isinstance(item[2], bool):
            return None
        doc, p, valid = item
        if p is None:
            out.append((doc, None, valid))
        elif isinstance(p, tuple) and len(p) == 4:
            out.append((None, Problem(*p), False))
        else:
            return None
    return out


def parse_in_two(texts: Sequence[tuple[str, bytes]]) -> Generator[TextOutcome, None, None]:
    """``parse_texts(texts)``, the last ``CHILD_SHARE`` of them parsed by a forked child
    when that can help (two CPUs, a large batch, no other thread in this process to fork
    with). This process's own share is parsed as it is asked for, so its schema checks
    run while the child parses."""
    if (len(texts) < MIN_TEXTS or not hasattr(os, "fork") or _cpus() < 2
            or threading.active_count() > 1):
        yield from parse_texts(texts)
        return
    cut = len(texts) - int(len(texts) * CHILD_SHARE)
    mine, theirs = texts[:cut], texts[cut:]
    try:
        r, w = os.pipe()
        pid = os.fork()
    except OSError:
        yield from parse_texts(texts)
        return
    if pid == 0:
        os.close(r)
        _child(theirs, w)
    os.close(w)
    reaped = False
    try:
        with os.fdopen(r, "rb") as f:
            for path, raw in mine:
                yield parse_text(path, raw)
            data = f.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
        back = _read_back(data, len(theirs)) if os.waitstatus_to_exitcode(status) == 0 \
            else None
        yield from back if back is not None else parse_texts(theirs)
    finally:
        if not reaped:  # abandoned, or interrupted: the child goes too
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
