"""The dashboard's documents (``core.dashboard``) and history (``core.history``): the fleet
map reads every tile from the status document, rollouts show stage, split, bake end and
gates without a ticking clock, canary cohorts and alarm levels, and commits classified
into bumps, promotions, rollbacks (alarm, value, threshold), reverts and rejections."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ruamel.yaml import YAML

from reconciler.compose.oneshot import load_directory
from reconciler.core import flags
from reconciler.core.dashboard import (
    Flag,
    alarm_level,
    canary_view,
    cell_view,
    cohorts,
    fleet_view,
    rollout_view,
    steady,
)
from reconciler.core.history import CommitRecord, history_events, rollback_reason, trailers
from reconciler.core.live import AlarmState, LiveSnapshot, snapshot_from_json
from reconciler.core.model import DesiredState
from reconciler.core.plan import Plan
from reconciler.core.planner import plan
from reconciler.core.statusview import status_json
from tests.core.test_planner import desired_of, live_json

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/core/fixtures/plans"
NOW = datetime(2026, 11, 22, 9, 10, tzinfo=UTC)


def _fleet() -> tuple[DesiredState, LiveSnapshot, Plan]:
    desired = load_directory(ROOT / "example-repo").desired
    assert desired is not None
    live = snapshot_from_json(json.loads((ROOT / "examples/live-mid-rollout.json").read_text()))
    return desired, live, plan(desired, live, NOW)


def test_fleet_map_tiles_are_the_status_documents_values() -> None:
    desired, live, p = _fleet()
    status = status_json(p, live)
    doc = fleet_view(desired, p, status, live)
    names = doc["cells"]["name"]
    assert names == sorted(desired.cells)
    for svc, body in status["services"].items():
        tiles = doc["services"][svc]
        for w in body["waves"]:
            for c in w["cells"]:
                i = names.index(c["cell"])
                v = tiles["version"][i]
                assert (doc["versions"][v] if v >= 0 else None) == flags.shown(svc,
                                                                               c["version"])
                assert doc["healths"][tiles["health"][i]] == c["health"]
                assert bool(tiles["flags"][i] & Flag.CHANGING) == (c["action"] in
                                                                   ("upgrade", "install"))
    i = names.index("euw1-canary-01")
    assert doc["waves"][doc["cells"]["wave"][i]] == "canary"
    assert doc["regions"][doc["cells"]["region"][i]] == desired.cells[names[i]].region
    assert "generatedAt" not in doc  # unchanged fleet → identical document


def test_rollout_stage_split_bake_end_and_gates_do_not_tick() -> None:
    desired, live, p = _fleet()
    doc = rollout_view(desired, p, live, "api")
    assert doc["stage"]["label"] == "1/4" and doc["stage"]["total"] == 4
    canary = doc["waves"][0]
    assert canary["state"] == "baking" and canary["bakeEndsAt"] == "2026-11-22T09:15:00Z"
    assert sum(s["weightPercent"] for s in doc["split"]) == 100.0
    assert {s["version"] for s in doc["split"]} == {"1.4.2", "1.5.0"}
    later = rollout_view(desired, plan(desired, live, NOW + timedelta(seconds=7)), live,
                         "api")
    assert later == doc  # the page counts down from bakeEndsAt; nothing here ticks
    assert doc["migrations"] and doc["migrations"][0]["id"] == "0007-order-currency"
    assert steady("wave 'canary' is baking 1.5.0 (3m5s left)") == \
        "wave 'canary' is baking 1.5.0"


def test_a_flag_shows_its_variant_names_not_its_stand_in_versions() -> None:
    """A flag is planned as a stand-in service whose versions are ``0.<rank>.0-<variant>``;
    the map, the rollout and the cell page show the variant (``on``), as plan and status
    do."""
    case = YAML(typ="safe").load((FIXTURES / "30-flag-on-canary-first.yaml").read_text())
    case["live"]["flag.checkout"]["c1"] = {"version": "0.1.0-on", "health": "Healthy",
                                           "previous": "0.0.0-off"}
    desired = desired_of(case)
    live = snapshot_from_json(live_json(case, sorted(desired.cells)))
    p = plan(desired, live, NOW)
    fleet = fleet_view(desired, p, status_json(p, live), live)
    assert {"on", "off"} <= set(fleet["versions"])
    assert not [v for v in fleet["versions"] if v.startswith("0.")], fleet["versions"]
    doc = rollout_view(desired, p, live, "flag.checkout")
    assert {s["version"] for s in doc["split"]} == {"on", "off"}
    assert doc["waves"][0]["cellsAt"] == {"on": 1}
    assert {w["targetVersion"] for w in doc["waves"]} == {"on"}
    cell = cell_view(desired, p, live, "c1")
    assert cell is not None
    shown = cell["services"]["flag.checkout"]
    assert (shown["version"], shown["target"], shown["previousVersion"]) == ("on", "on", "off")
    assert cell["services"]["app"]["version"] == "1.1.0"  # a real service: its version


def test_cohorts_and_alarm_levels() -> None:
    _, _, p = _fleet()
    c = cohorts(p, "api")
    assert c.canary_version == "1.5.0" and c.baseline_version == "1.4.2"
    assert "euw1-canary-01" in c.canary and "use1-c-02" in c.baseline
    assert alarm_level(">", 0.01, 0.05, False) == "ok"
    assert alarm_level(">", 0.045, 0.05, False) == "near"
    assert alarm_level(">", 0.06, 0.05, False) == "crossed"
    assert alarm_level(">", 0.01, 0.05, True) == "crossed"
    assert alarm_level("<", 0.9, 0.5, False) == "ok"
    assert alarm_level("<", 0.55, 0.5, False) == "near"
    view = canary_view(c, {"errors": {"canary": [(1.0, 0.02), (2.0, 0.06)],
                                      "baseline": [(1.0, 0.01), (2.0, 0.02)]},
                           "requests": {"canary": [(2.0, 50.0)], "baseline": [(2.0, 100.0)]}},
                       [], 600)
    assert view["metrics"]["errors"]["flagged"] and view["metrics"]["errors"]["ratio"] == 3
    assert not view["metrics"]["requests"]["flagged"] and view["warning"]


def test_cell_page_has_no_credentials() -> None:
    desired, live, p = _fleet()
    doc = cell_view(desired, p, live, "euw1-a-01",
                    [{"kind": "kubernetes-apply", "status": "done"}])
    assert doc is not None and doc["services"]["api"]["version"] == "1.5.0"
    text = json.dumps(doc)
    for ref in desired.cells["euw1-a-01"].databases:
        for name in (ref.secret_env, ref.secret_file):
            assert not name or name not in text
    assert cell_view(desired, p, live, "nope") is None
    firing = replace(live, alarms=(AlarmState("error-rate", "euw1-a-01", True, 0.2, 0.05, 3),))
    assert cell_view(desired, p, firing, "euw1-a-01")["alarms"] == [  # type: ignore[index]
        {"rule": "error-rate", "firing": True, "value": 0.2, "threshold": 0.05, "samples": 3}]


def _c(sha: str, message: str, paths: tuple[str, ...], files: dict[str, tuple[str | None,
                                                                            str | None]],
       email: str = "dev@example.com") -> CommitRecord:
    return CommitRecord(sha, "dev", email, NOW, message, paths, files)


RELEASE = ("apiVersion: reconciler.dev/v1\nkind: Release\nmetadata: {name: shop}\nspec:\n"
           "  service: shop\n  versions:\n    - groups: [canary, zone, rest]\n"
           "      version: %s\n")


def test_history_kinds() -> None:
    revert = _c("r" * 40, "Roll back shop 1.1.0 in canary, zone, rest\n\nalarm 'error-rate' "
                "fired on e2e-c1 = 0.5 > 0.05 after 1.1.0\n\nReconciler-Status: true\n"
                "Reconciler-Rollback-Of: " + "b" * 40 + "\n", ("releases/shop.yaml",),
                {"releases/shop.yaml": (RELEASE % "1.1.0", RELEASE % "1.0.0")},
                "reconciler@e2e.example")
    status = _c("s" * 40, "status: 3 steps done\n\nReconciler-Status: true\n",
                ("status/rollouts/shop.yaml", "status/desired.yaml"),
                {"status/rollouts/shop.yaml": (
                    "service: shop\nwaves:\n  canary: {state: baking, version: 1.1.0}\n",
                    "service: shop\nwaves:\n  canary: {state: done, version: 1.1.0}\n"),
                 "status/desired.yaml": ("revision: a\nvalid: true\n",
                                         "revision: c\nvalid: false\nerrors: [bad.yaml:1:1: "
                                         "oops]\n")}, "reconciler@e2e.example")
    bump = _c("b" * 40, "bump shop to 1.1.0", ("releases/shop.yaml",),
              {"releases/shop.yaml": (RELEASE % "1.0.0", RELEASE % "1.1.0")})
    human = _c("h" * 40, 'Revert "bump shop to 1.1.0"\n\nThis reverts commit ' + "b" * 40 + ".",
               ("releases/shop.yaml",),
               {"releases/shop.yaml": (RELEASE % "1.1.0", RELEASE % "1.0.0")})
    other = _c("o" * 40, "docs", ("README.md",), {})
    events = history_events([revert, human, status, bump, other], "status")
    kinds = [e["kind"] for e in events]
    assert kinds == ["rollback", "revert", "rejected", "promoted", "bump"]
    rb = events[0]
    assert (rb["alarm"], rb["cell"], rb["value"], rb["threshold"]) == ("error-rate", "e2e-c1",
                                                                       0.5, 0.05)
    assert rb["revertOf"] == "b" * 40 and rb["groups"] == ["canary", "zone", "rest"]
    assert events[1]["revertOf"] == "b" * 40
    assert events[3]["wave"] == "canary" and events[3]["version"] == "1.1.0"
    assert events[2]["revision"] == "c" and "oops" in events[2]["errors"][0]
    assert events[4]["changes"] == [{"service": "shop", "from": "1.0.0", "to": "1.1.0",
                                     "groups": ["canary", "rest", "zone"]}]
    assert all(e["commit"] for e in events)
    assert trailers("x\n\nA-B: c\nnot a trailer") == {"A-B": "c"}
    assert rollback_reason("shop-1 is Degraded on 1.2.0: CrashLoop")["cause"] == "health"
