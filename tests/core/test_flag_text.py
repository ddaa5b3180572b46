"""Flag promotions as people read them: ``flag checkout: off → on, wave 1/3`` in the plan,
status, diff (text and markdown) and the dashboard's rollout document."""

from __future__ import annotations

from datetime import datetime

from reconciler.core.dashboard import rollout_view
from reconciler.core.live import parse_time, snapshot_from_json
from reconciler.core.loader import load_repository
from reconciler.core.plantext import render
from reconciler.core.preview import build_preview
from reconciler.core.previewtext import render_markdown, render_text
from reconciler.core.settled import settled_snapshot
from reconciler.core.statusview import render_status, status_json
from tests.core.support import FIXTURES, overlay
from tests.core.test_planner import _case, run_case

PLANS = FIXTURES / "plans"


def _plan(name: str):  # type: ignore[no-untyped-def]
    case = _case(PLANS / f"{name}.yaml")
    p, doc = run_case(case)
    return case, p, snapshot_from_json(doc)


def test_plan_text_names_the_flag_its_variants_and_the_wave() -> None:
    _, p, _ = _plan("30-flag-on-canary-first")
    text = render(p)
    assert "flag checkout: off → on, wave 1/3" in text
    assert "~ c1                     off → on" in text
    assert "service flag.checkout" not in text


def test_plan_text_of_a_breach_shows_the_rollback_and_the_revert() -> None:
    _, p, _ = _plan("33-flag-alarm-during-bake-turns-it-off")
    text = render(p)
    assert "- c1                     on → off" in text
    assert "revert-commit (canary, zone, rest): on is set back in Git" in text
    assert "held: on for zone: promotion stopped" in text


def test_status_text_and_json() -> None:
    _, p, live = _plan("30-flag-on-canary-first")
    doc = status_json(p, live)
    body = doc["services"]["flag.checkout"]
    assert body["flag"] == "checkout"
    assert body["promotion"] == "flag checkout: off → on, wave 1/3"
    text = render_status(p, live)
    assert "flag checkout: off → on, wave 1/3" in text
    assert "off → on" in text.split("flag checkout:")[1]


def test_dashboard_rollout_names_the_promotion() -> None:
    case, p, live = _plan("30-flag-on-canary-first")
    desired = load_repository(overlay(case["files"])).desired
    assert desired is not None
    view = rollout_view(desired, p, live, "flag.checkout")
    assert view["promotion"] == "flag checkout: off → on, wave 1/3"
    assert rollout_view(desired, p, live, "app")["promotion"] is None


def test_diff_text_and_markdown() -> None:
    case = _case(PLANS / "30-flag-on-canary-first.yaml")
    text = case["files"]["flags/checkout.yaml"]
    base = load_repository(overlay({"flags/checkout.yaml": text.replace(
        'variant: "on"', 'variant: "off"')})).desired
    head = load_repository(overlay(case["files"])).desired
    assert base is not None and head is not None
    now = parse_time("2026-11-22T10:00:00Z")
    assert isinstance(now, datetime)
    preview = build_preview(base, head, settled_snapshot(base, now), now, "settled", ())
    out = render_text(preview)
    assert "~ flag checkout: off → on on c1" in out
    assert "reconciler.dev/flag-variant: 'on'" in out
    assert "flag checkout: off → on" in render_markdown(preview)
