"""Hypothesis profiles of the model-based test.

``model`` (the default here): bounded so that ``pytest tests/model`` stays within a few
minutes on a 2-core machine. ``deep``, for nightly runs::

    pytest tests/model --hypothesis-profile=deep

Both derive from the profile loaded when this file is imported (Hypothesis's ``ci``
profile under CI, which derandomizes); ``deep`` explores new random sequences every night
(``derandomize=False``; a failure prints the blob that reproduces it) and runs in 20
parts (``test_machine.py``) so that none meets the suite's per-test time limits.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_BASE = settings.get_profile(settings.get_current_profile_name())
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("model", parent=_BASE, max_examples=20, stateful_step_count=25,
                          deadline=None, suppress_health_check=_SLOW)
settings.register_profile("deep", parent=_BASE, max_examples=1500, stateful_step_count=60,
                          deadline=None, suppress_health_check=_SLOW, derandomize=False,
                          print_blob=True)
