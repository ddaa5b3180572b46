"""End to end through a real ``reconciler run`` on the local control plane: a feature flag
promoted like a version. One commit bumps the shop to 1.1.0 and turns on a flag whose
variant requires it: in each cell the flag waits until the cell runs 1.1.0, and lands wave
by wave; the kill switch (``reconciler flag off``, the real CLI) turns it off in every cell
within 5 s. Then: an alarm breach during the flag's bake in the canary turns it back off
there with one revert commit, and the later waves never see it. The variant each cell
serves is read from the cluster's ConfigMaps and evaluated by flagd's own evaluator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from reconciler.core import flags
from reconciler.testing.gitserver import GIT_ENV, git
from tests.e2e.conftest import CELLS, Fleet, bump_release, set_canary_bake
from tests.e2e.daemon import DaemonProcess, RemoteFleet

pytestmark = pytest.mark.e2e

FLAG = """apiVersion: reconciler.dev/v1
kind: Flag
metadata: {name: checkout}
spec:
  variants:
    - {name: "off", value: false}
    - name: "on"
      value: true
      requires: {service: shop, version: ">=1.1.0"}
  defaultVariant: "off"
  groups:
    - {groups: [canary, zone, rest], variant: "off"}
"""
WAVE = {"e2e-c1": 0, "e2e-z1": 1, "e2e-r1": 2, "e2e-r2": 2}
ON, OFF = "applied flag.checkout 0.1.0-on to ", "applied flag.checkout 0.0.0-off to "


def with_flag(fleet: Fleet) -> None:
    (fleet.repo / "flags").mkdir()
    (fleet.repo / "flags" / "checkout.yaml").write_text(FLAG)
    fleet.git("add", "flags")
    fleet.git("commit", "-qm", "flag checkout, off")


def served(fleet: Fleet) -> dict[str, str | None]:
    """cell -> the variant flagd evaluates from the cell's ConfigMap in the cluster."""
    out: dict[str, str | None] = {}
    for cell in CELLS:
        text = (fleet.repo / "cells" / f"{cell}.yaml").read_text()
        ns = re.search(r"namespace: (\S+)", text)
        assert ns is not None
        try:
            cm = fleet.plane.request("GET", f"/api/v1/namespaces/{ns[1]}/configmaps/"
                                            f"{flags.configmap_name('checkout')}")
        except OSError:
            out[cell] = None
            continue
        core = FlagdCore()
        core.set_flags(cm["data"][flags.CONFIGMAP_KEY])
        got = core.resolve_boolean_value("checkout", False, EvaluationContext("u1", {}))
        out[cell] = got.variant
    return out


def first(text: str, needle: str) -> int:
    at = text.find(needle)
    assert at >= 0, f"{needle!r} not in the daemon's log"
    return at


def push_flag(remote: RemoteFleet, variant: str, version: str | None = None,
              canary_bake: str | None = None) -> None:
    git(remote.human, "pull", "-q", "--rebase")
    path = remote.human / "flags" / "checkout.yaml"
    path.write_text(FLAG.replace('variant: "off"}', f'variant: "{variant}"}}'))
    if version:
        bump_release(remote.human, version)
    if canary_bake:
        set_canary_bake(remote.human, canary_bake)
    git(remote.human, "commit", "-qam", f"checkout {variant}" + (f", shop {version}"
                                                                   if version else ""))
    remote.push()


def kill_switch(remote: RemoteFleet) -> float:
    """Run the real CLI in the human clone; the time it finished."""
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run([sys.executable, "-m", "reconciler.cli", "flag", "off", "checkout",
                          "--repo", str(remote.human)], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "flag checkout: off in canary, zone, rest" in out.stdout
    return time.monotonic()


def test_flag_waits_for_its_version_lands_wave_by_wave_and_kill_switch(
        fleet: Fleet, tmp_path: Path) -> None:
    with_flag(fleet)
    remote = RemoteFleet(fleet, tmp_path)
    daemon = DaemonProcess(remote, tmp_path / "state")
    try:
        daemon.start()
        daemon.wait_for(lambda: remote.cells_at("1.0.0") and
                        set(served(fleet).values()) == {"off"}, "install, flag off")
        push_flag(remote, "on", version="1.1.0")  # one commit: the version and the flag
        daemon.wait_for(lambda: set(served(fleet).values()) == {"on"},
                        "the flag on in every cell", timeout=240)
        log = daemon.text()
        for cell in CELLS:  # the version reached the cell before the flag turned on there
            assert first(log, f"applied shop 1.1.0 to {cell}") < first(log, ON + cell), cell
        order = sorted(CELLS, key=lambda c: first(log, ON + c))
        assert [WAVE[c] for c in order] == sorted(WAVE[c] for c in order), order
        done = kill_switch(remote)
        while time.monotonic() - done < 5.0:
            if set(served(fleet).values()) == {"off"}:
                break
            time.sleep(0.05)
        took = time.monotonic() - done
        assert set(served(fleet).values()) == {"off"}, (took, served(fleet))
        assert took < 5.0, took
    finally:
        rc = daemon.stop()
        remote.stop()
    assert rc == 0
    print(f"kill switch: every cell off {took:.2f}s after the command")
    subjects = git(remote.bare, "log", "--format=%s", "main")
    assert "Kill switch: flag checkout off in canary, zone, rest" in subjects
    assert "Roll back" not in subjects


def test_breach_during_flag_bake_turns_it_off_in_the_failing_wave(
        fleet: Fleet, tmp_path: Path) -> None:
    with_flag(fleet)
    bump_release(fleet.repo, "1.1.0")  # the required version everywhere from the start
    fleet.git("commit", "-qam", "shop 1.1.0")
    remote = RemoteFleet(fleet, tmp_path)
    daemon = DaemonProcess(remote, tmp_path / "state")
    try:
        daemon.start()
        daemon.wait_for(lambda: remote.cells_at("1.1.0") and
                        set(served(fleet).values()) == {"off"}, "install, flag off")
        push_flag(remote, "on", canary_bake="60s")
        bump = git(remote.bare, "rev-parse", "main")
        daemon.wait_for(lambda: served(fleet)["e2e-c1"] == "on", "the flag on in the canary")
        fleet.exporter.set_error_rate("e2e-c1", 0.5)
        daemon.wait_for(lambda: "Roll back flag.checkout on" in git(
            remote.bare, "log", "--format=%s", "main"), "the revert pushed")
        daemon.wait_for(lambda: served(fleet)["e2e-c1"] == "off", "the canary off again")
        time.sleep(3)  # later ticks: nothing more happens
    finally:
        rc = daemon.stop()
        remote.stop()
        fleet.exporter.set_error_rate("e2e-c1", 0.0)
    assert rc == 0
    assert set(served(fleet).values()) == {"off"}
    log = daemon.text()
    assert {c for c in CELLS if ON + c in log} == {"e2e-c1"}  # later waves never saw it
    subjects = git(remote.bare, "log", "--format=%s", "main").splitlines()
    assert sum(1 for s in subjects if s.startswith("Roll back flag.checkout on")) == 1
    sha = next(line.split()[0] for line in git(remote.bare, "log", "--format=%H %s",
                                               "main").splitlines() if "Roll back" in line)
    message = git(remote.bare, "log", "-1", "--format=%B", sha)
    assert f"Reconciler-Rollback-Of: {bump}" in message
    assert "error-rate" in message
    assert 'variant: "on"' not in remote.show("flags/checkout.yaml")
