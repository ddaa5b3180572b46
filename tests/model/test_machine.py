"""The state machine in the normal suite (profile ``model``), or, with
``--hypothesis-profile=deep``, nightly in parts: each part stays well under the suite's
per-test limits (pytest-timeout's 15 minutes, tests/conftest.py's 20) and explores its own
random sequences (``deep`` does not derandomize)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model.machine import LoopMachine

DEEP = settings.get_current_profile_name() == "deep"
#: The deep profile's examples are split over this many tests.
DEEP_PARTS = 20

if DEEP:
    @pytest.mark.parametrize("part", range(DEEP_PARTS))
    def test_deep(part: int) -> None:
        deep = settings.get_profile("deep")
        run_state_machine_as_test(
            LoopMachine, settings=settings(deep, max_examples=max(1, deep.max_examples //
                                                                  DEEP_PARTS)))
else:
    TestLoop = LoopMachine.TestCase
    TestLoop.settings = settings.get_profile("model")
