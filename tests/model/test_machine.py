"""The state machine in the normal suite (profile ``model``; ``deep`` nightly)."""

from __future__ import annotations

from hypothesis import settings

from tests.model.machine import LoopMachine


def _settings() -> settings:
    deep = settings.get_current_profile_name() == "deep"
    return settings.get_profile("deep" if deep else "model")


TestLoop = LoopMachine.TestCase
TestLoop.settings = _settings()
