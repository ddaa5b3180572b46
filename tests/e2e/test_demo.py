"""The README's main command, through its own path: ``reconciler demo`` runs the real
daemon against a bare remote; the bad version's canary is rolled back with exactly one
revert commit and the bad version is never applied again after the rollback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.demo import BAD, CANARIES, DemoUnavailable, record_demo

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
MOVES = ("kubernetes-apply", "rollback", "terraform-apply")


def test_demo_rolls_the_bad_canary_back_once_and_never_reapplies_it() -> None:
    lines: list[str] = []
    try:
        record = record_demo(EXAMPLE, lines.append)
    except DemoUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the demo's parts are missing: {e}")
        pytest.skip(str(e))
    assert len(record.reverts) == 1, record.reverts
    assert "Reconciler-Rollback-Of" in record.revert_message
    bad = [o for o in record.bad_outcomes if o.status == "done"]
    first_rollback = next(i for i, o in enumerate(bad) if o.step.kind == "rollback")
    applied = [o for o in bad[:first_rollback] if o.step.kind == "kubernetes-apply"
               and o.step.to_version == BAD]
    assert applied and {o.step.cell for o in applied} <= set(CANARIES), applied
    again = [o.step.id for o in bad[first_rollback:]
             if o.step.kind in MOVES and o.step.to_version == BAD]
    assert not again, again
    reverts = [o for o in record.outcomes if o.step.kind == "revert-commit"
               and o.status == "done"]
    assert len(reverts) == 1, reverts
    assert set(re.findall(r"version: (\S+)", record.release)) == {"1.5.0"}
    text = "\n".join(lines)
    assert "1 revert commit(s)" in text and "later waves never ran it" in text, text
