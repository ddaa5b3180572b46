"""Suite-wide guard: a test stuck inside a C library (where pytest-timeout's signal cannot
reach it: libgit2 has been seen looping forever on a damaged object) ends the run after
20 minutes with every thread's stack, instead of stalling CI until its own deadline."""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator

import hypothesis  # noqa: F401  (see below)
import pytest

# Hypothesis is imported here, at collection, on purpose: imported first at the end of
# a session (its pytest plugin's terminal summary) with trio installed (selenium's
# dependency), loading trio's Hypothesis entry point failed with "module
# 'trio._core._run' has no attribute '_hypothesis_plugin_setup'" and exit status 1
# after every test had passed.

STUCK_IN_C = 1200  # seconds; pytest-timeout (pyproject) fails a test stuck in Python at 900


@pytest.fixture(autouse=True)
def _stuck_test_guard() -> Iterator[None]:
    out = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    faulthandler.dump_traceback_later(STUCK_IN_C, exit=True, file=out)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
