"""The traffic phase of a cell as plan, diff, status and the dashboard show it ("canary 50%
in c1, 1m left"), from the planner fixtures of a canary in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core import plantext
from reconciler.core.dashboard import cell_view, rollout_view
from reconciler.core.live import snapshot_from_json
from reconciler.core.phases import cell_phases
from reconciler.core.preview import build_preview
from reconciler.core.previewtext import render_text
from reconciler.core.statusview import render_status, status_json
from tests.core.support import FIXTURES
from tests.core.test_planner import _case, desired_of, run_case

PLANS = FIXTURES / "plans"


@pytest.mark.parametrize(("fixture", "text", "plan_text"), [
    ("84-canary-pause-holds-the-step-and-the-wave", "canary 50% in c1, 1m left",
     "    waits: canary 50% in c1, 1m left\n    ~ c1                     1.0.0 → 1.1.0      "
     "traffic-switch\n"),
    ("82-canary-shadow-period-holds", "shadow in c1, 30s left",
     "waits: shadow in c1, 30s left\n    ~ c1                     1.0.0 → 1.1.0      "
     "traffic-weight 10%, traffic-weight 50%, traffic-switch\n"),
    ("85-canary-analysis-waits-for-samples", "canary 50% in c1, analysis waits: ",
     "waits: canary 50% in c1: alarm 'error-ratio'"),
    ("83-canary-next-step-after-pause", "canary 10% in c1, traffic-weight 50% due",
     "traffic-weight 50%, traffic-switch   [due now]"),
])
def test_phase_text_everywhere(fixture: str, text: str, plan_text: str) -> None:
    case = _case(Path(PLANS / f"{fixture}.yaml"))
    p, doc = run_case(case)
    desired, live = desired_of(case), snapshot_from_json(doc)
    phase = cell_phases(desired, p, live)[("app", "c1")]
    assert phase.text(p.generated_at).startswith(text)
    assert plan_text in plantext.render(p, desired)
    status = status_json(p, live, desired)
    cell = next(c for w in status["services"]["app"]["waves"] for c in w["cells"]
                if c["cell"] == "c1")
    assert cell["phase"]["text"].startswith(text)
    assert text in render_status(p, live, desired)
    rollout = rollout_view(desired, p, live, "app")
    rows = [r for w in rollout["waves"] for r in w["phases"]]
    assert [r["cell"] for r in rows] == ["c1"]
    assert rows[0]["phase"] == text.split(",")[0]  # steady: no time left in the document
    one = cell_view(desired, p, live, "c1")
    assert one is not None and one["services"]["app"]["phase"]["text"].startswith(text)


def test_no_phase_without_traffic() -> None:
    case = _case(Path(PLANS / "81-canary-shadow-first-when-healthy.yaml"))
    p, doc = run_case(case)
    assert cell_phases(desired_of(case), p, snapshot_from_json(doc)) == {}


def test_diff_shows_the_phase() -> None:
    case = _case(Path(PLANS / "84-canary-pause-holds-the-step-and-the-wave.yaml"))
    p, doc = run_case(case)
    desired = desired_of(case)
    preview = build_preview(desired, desired, snapshot_from_json(doc), p.generated_at, "live")
    c1 = next(c for c in preview.changes if c.cell == "c1")
    assert c1.when == "canary 50% in c1, 1m left"
    assert "canary 50% in c1, 1m left" in render_text(preview)
