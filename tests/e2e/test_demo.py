"""The README's main command, through its own path: ``reconciler demo`` runs the real
daemon against a bare remote; the bad version's canary is rolled back with exactly one
revert commit and the bad version is never applied again after the rollback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from reconciler.demo import BAD, CANARIES, DemoRecord, DemoUnavailable, record_demo

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).resolve().parents[2] / "example-repo"
MOVES = ("kubernetes-apply", "rollback", "terraform-apply")


def _show_log(lines: list[str]) -> None:
    """On failure: the narration is in the captured output already; add the daemon's log."""
    for line in lines:
        found = re.search(r"its log: (\S+)", line)
        if found and Path(found.group(1)).is_file():
            tail = Path(found.group(1)).read_text().splitlines()[-120:]
            print("--- the daemon's log, last lines:", *tail, sep="\n")


def test_demo_rolls_the_bad_canary_back_once_and_never_reapplies_it() -> None:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    try:
        record = record_demo(EXAMPLE, say)
    except DemoUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the demo's parts are missing: {e}")
        pytest.skip(str(e))
    except BaseException:
        _show_log(lines)
        raise
    try:
        _check(record, lines)
    except AssertionError:
        _show_log(lines)
        raise


def _check(record: DemoRecord, lines: list[str]) -> None:
    assert len(record.reverts) == 1, record.reverts
    assert "Reconciler-Rollback-Of" in record.revert_message
    bad = [o for o in record.bad_outcomes if o.status == "done"]
    rollbacks = [i for i, o in enumerate(bad) if o.step.kind == "rollback"]
    assert rollbacks, "the canary was never rolled back"
    first_rollback = rollbacks[0]
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
