"""Blue-green shapes (reconciler.core.bluegreen): a workload per colour, the Services'
selector as the switch, shared objects untouched, and the recorded colour state."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core import bluegreen as bg

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
             "template": {"metadata": {"labels": {"app": "shop"}}}}}
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
                           "spec": {"selector": {"app": "shop"}}}
CONFIG: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "shop-config"}}


@pytest.mark.parametrize(("obj", "kind"), [(DEPLOYMENT, "workload"), (SERVICE, "route"),
                                           (CONFIG, "shared")])
def test_kinds(obj: dict[str, Any], kind: str) -> None:
    assert bg.kind_of(obj) == kind


def test_a_coloured_workload_selects_only_its_colour() -> None:
    green = bg.coloured(DEPLOYMENT, "green")
    assert green["metadata"]["name"] == "shop-green"
    assert green["spec"]["selector"]["matchLabels"] == {"app": "shop", bg.COLOUR_LABEL: "green"}
    assert green["spec"]["template"]["metadata"]["labels"][bg.COLOUR_LABEL] == "green"
    assert bg.colour_of(green) == "green"
    assert DEPLOYMENT["metadata"]["name"] == "shop"  # the input is not changed
    assert bg.scaled_to_zero(green)["spec"]["replicas"] == 0


def test_the_switch_is_the_services_selector() -> None:
    assert bg.routed(SERVICE, "blue")["spec"]["selector"] == {"app": "shop",
                                                              bg.COLOUR_LABEL: "blue"}
    assert bg.routed(bg.routed(SERVICE, "blue"), "green")["spec"]["selector"][
        bg.COLOUR_LABEL] == "green"


def test_colours_record() -> None:
    fresh = bg.Colours()
    assert fresh.standby == "blue" and fresh.colour_running("1.0.0") is None
    state = bg.Colours("green", {"green": "1.1.0", "blue": "1.0.0"})
    assert state.standby == "blue"
    assert state.colour_running("1.0.0") == "blue"
    down = bg.Colours("green", {"green": "1.1.0", "blue": "1.0.0"}, frozenset({"blue"}))
    assert down.colour_running("1.0.0") is None  # scaled to zero: nothing to switch back to
    assert bg.Colours.from_text(down.to_text()) == down
    assert down.with_version("blue", "1.2.0").scaled_down == frozenset()
    assert down.without("blue").versions == {"green": "1.1.0"}
