"""End to end through a real ``reconciler run``: a canary service (``strategy: canary``,
``canary.steps [10, 50, 100]`` with a pause, a ``shadow`` phase first) on the real control
plane with the Gateway API CRDs, its weights and mirror written to the real HTTPRoute of
each cell, judged on real PromQL: Prometheus scrapes the test exporter, whose stable and
canary pod groups follow the HTTPRoutes (the canary's share of the requests by weight,
a mirror of all of them while shadowing), and an in-cell baseline rule compares the
canary pods with the stable pods. Watched from the test every 50 ms:

- 2.0.0 (needs a migration): in every cell the expand runs before the first traffic to
  it (the mirror); in e2e-c1 the route shows the mirror before any weight, then 10%, 50%
  and the switch to 100%, each after its pause; the next wave's cell starts only after
  e2e-c1 finished all its steps;
- 2.1.0, whose canary pods fail 4x the stable pods' rate once it has 50% (still under the
  5% absolute alarm of the cell): aborted at 50% — the weight back to 0, the canary's
  Deployment and Service removed — and reverted with one commit naming the ratio."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.kubernetes.inventory import inventory_name
from reconciler.localparts.gatewayapi import GatewayApiUnavailable, install_crds
from reconciler.localparts.prometheus import Group
from reconciler.testing.gitserver import git
from tests.e2e.conftest import CELLS, Fleet, unavailable
from tests.e2e.daemon import DaemonProcess, RemoteFleet

pytestmark = pytest.mark.e2e

SHADOW, PAUSE = 2.0, 5.0
ROUTE = """---
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: "{{ cell.namespace }}"
spec:
  selector: {app: shop}
  ports:
    - {port: 80, targetPort: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
  namespace: "{{ cell.namespace }}"
spec:
  parentRefs: [{name: cell-gateway}]
  rules:
    - backendRefs: [{name: shop, port: 80}]
"""
RULE = """
    - name: error-ratio
      compare: baseline
      query: >-
        sum(rate(app_requests_total{cell=~"{{ cells }}",version="{{ version }}",code=~"5.."}[4s]))
        / sum(rate(app_requests_total{cell=~"{{ cells }}",version="{{ version }}"}[4s]))
      maxRatio: 1.5
      minBaseline: 0.001
      minSamples: 3
      window: 6s
"""
API = "/apis/gateway.networking.k8s.io/v1"


def _canary(fleet: Fleet) -> None:
    svc = fleet.repo / "services" / "shop" / "service.yaml"
    svc.write_text(svc.read_text().replace("spec:\n", (
        "spec:\n  strategy: canary\n"
        f"  canary: {{steps: [10, 50, 100], pause: {int(PAUSE)}s}}\n"
        f"  shadow: {{duration: {int(SHADOW)}s}}\n"), 1))
    app = fleet.repo / "services" / "shop" / "kubernetes" / "app.yaml"
    app.write_text(app.read_text().rstrip("\n") + "\n" + ROUTE)
    conf = fleet.repo / "reconciler.yaml"
    text = conf.read_text().replace("maxUnavailable: 50%", "maxUnavailable: 100%")
    conf.write_text(text.rstrip("\n") + "\n" + RULE.lstrip("\n"))


@dataclass
class Seen:
    """Each HTTPRoute state of e2e-c1 as it changed: (monotonic time, version -> weight,
    mirrored versions)."""

    route: list[tuple[float, dict[str, int], tuple[str, ...]]] = field(default_factory=list)
    bad_at_50: float | None = None
    #: (version, "mirror" or "<weight>%") -> when the daemon recorded that phase in
    #: e2e-c1's inventory (wall clock), and monotonic - wall at the time
    since: dict[tuple[str, str], float] = field(default_factory=dict)
    offset: float = 0.0

    def first(self, pred: Any, after: float = 0.0) -> float | None:
        return next((t for t, w, m in self.route if t >= after and pred(w, m)), None)


def _items(fleet: Fleet, path: str) -> list[dict[str, Any]]:
    got: dict[str, Any] = fleet.plane.request("GET", path)
    return list(got.get("items") or [])


def _namespaces(fleet: Fleet) -> dict[str, str]:
    out = {}
    for f in (fleet.repo / "cells").glob("*.yaml"):
        m = re.search(r"namespace: (\S+)", f.read_text())
        assert m
        out[m[1]] = f.stem
    return out


def _read(fleet: Fleet, cells: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per cell: colour -> (version, replicas), the serving colour, route weights and
    mirrors by colour."""
    out: dict[str, dict[str, Any]] = {c: {"colours": {}, "weights": {}, "mirrors": ()}
                                      for c in cells.values()}
    for d in _items(fleet, "/apis/apps/v1/deployments"):
        cell = cells.get(d["metadata"]["namespace"])
        name = d["metadata"]["name"]
        if cell and name.startswith("shop-"):
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            out[cell]["colours"][name[5:]] = (image.rsplit(":", 1)[1],
                                             int(d["spec"].get("replicas", 1)))
    for s in _items(fleet, "/api/v1/services?fieldSelector=metadata.name%3Dshop"):
        cell = cells.get(s["metadata"]["namespace"])
        if cell:
            out[cell]["active"] = (s["spec"].get("selector") or {}).get("reconciler.dev/colour")
    for r in _items(fleet, f"{API}/httproutes"):
        cell = cells.get(r["metadata"]["namespace"])
        if not cell:
            continue
        rule = r["spec"]["rules"][0]
        out[cell]["weights"] = {b["name"][5:]: int(b.get("weight", 1))
                                for b in rule.get("backendRefs") or []}
        out[cell]["mirrors"] = tuple(f["requestMirror"]["backendRef"]["name"][5:]
                                     for f in rule.get("filters") or []
                                     if f["type"] == "RequestMirror")
    return out


def _groups(state: dict[str, Any]) -> list[Group]:
    """The pod groups the cell's route sends requests to."""
    colours, active = state["colours"], state.get("active")
    if active not in colours:
        return []
    groups = []
    for colour, weight in state["weights"].items():
        if colour in colours and weight > 0:
            pods = "stable" if colour == active else "canary"
            groups.append(Group(colours[colour][0], pods, weight / 100))
    groups += [Group(colours[c][0], "canary", 1.0, served=False)
               for c in state["mirrors"] if c in colours]
    return groups


def _record_since(fleet: Fleet, path: str, seen: Seen) -> None:
    """The phase e2e-c1's inventory records for its new colour, and since when."""
    try:
        cm: dict[str, Any] = fleet.plane.request("GET", path)
    except Exception:
        return
    colours = json.loads((cm.get("data") or {}).get("colours") or "{}")
    standby = "green" if colours.get("active") == "blue" else "blue"
    version = (colours.get("versions") or {}).get(standby)
    if not colours.get("since") or not version:
        return
    phase = "mirror" if colours.get("mirror") else f"{colours.get('weight') or 0}%"
    stamp = datetime.fromisoformat(colours["since"]).timestamp()
    seen.since.setdefault((version, phase), stamp + seen.offset)  # as monotonic time


@contextmanager
def following(fleet: Fleet) -> Iterator[Seen]:
    """Every 50 ms: the exporter's pod groups follow each cell's route; e2e-c1's route is
    recorded; a 2.1.0 canary at 50% in e2e-c1 turns bad at once."""
    seen, stop, cells = Seen(), threading.Event(), _namespaces(fleet)
    seen.offset = time.monotonic() - time.time()
    c1_ns = next(n for n, c in cells.items() if c == "e2e-c1")
    inv_path = f"/api/v1/namespaces/{c1_ns}/configmaps/{inventory_name('e2e-c1', 'shop')}"

    def follow() -> None:
        while not stop.wait(0.05):
            try:
                states = _read(fleet, cells)
            except Exception:  # the API server may be briefly away: try again
                continue
            now = time.monotonic()
            for cell, state in states.items():
                fleet.exporter.set_groups(cell, _groups(state) or None)
            c1 = states["e2e-c1"]
            _record_since(fleet, inv_path, seen)
            by_version = {c1["colours"][c][0]: w for c, w in c1["weights"].items()
                          if c in c1["colours"]}
            mirrored = tuple(c1["colours"][c][0] for c in c1["mirrors"] if c in c1["colours"])
            if not seen.route or seen.route[-1][1:] != (by_version, mirrored):
                seen.route.append((now, by_version, mirrored))
            if by_version.get("2.1.0") == 50 and seen.bad_at_50 is None:
                fleet.exporter.set_version_error_rate("2.1.0", 0.04)
                seen.bad_at_50 = now

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)
        for cell in CELLS:
            fleet.exporter.set_groups(cell, None)
        fleet.exporter.set_version_error_rate("2.1.0", None)


def _events(text: str) -> list[tuple[float, str, str]]:
    """(time, cell, message) of every step-done log line."""
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if " done" in str(rec.get("message", "")) and rec.get("cell"):
            out.append((float(rec.get("ts") or 0), str(rec["cell"]), str(rec["message"])))
    return out


def _first(events: list[tuple[float, str, str]], cell: str, prefix: str) -> int:
    return next(i for i, (_, c, m) in enumerate(events) if c == cell and m.startswith(prefix))


def test_canary_steps_shadow_abort_and_expand(fleet: Fleet, tmp_path: Path) -> None:
    try:
        install_crds(fleet.plane)
    except GatewayApiUnavailable as e:
        unavailable(str(e))
    _canary(fleet)
    remote = RemoteFleet(fleet, tmp_path)
    daemon = DaemonProcess(remote, tmp_path / "state")
    for cell in CELLS:
        fleet.exporter.set_error_rate(cell, 0.01)
    try:
        with following(fleet) as seen:
            daemon.start()
            daemon.wait_for(lambda: remote.cells_at("1.0.0"), "install at 1.0.0")
            t_good = time.monotonic()
            mark = len(daemon.text())
            remote.push_version("2.0.0", canary_bake="2s")
            daemon.wait_for(lambda: remote.cells_at("2.0.0") and remote.waves_done(),
                            "2.0.0 everywhere", timeout=300)
            good = daemon.text()[mark:]
            t_bad = time.monotonic()
            remote.push_version("2.1.0", canary_bake="60s")
            daemon.wait_for(lambda: "Roll back shop 2.1.0" in git(
                remote.bare, "log", "--format=%s", "main"), "the revert pushed", timeout=180)
            daemon.wait_for(lambda: seen.first(lambda w, m: "2.1.0" not in w, t_bad + 1) is
                            not None and seen.bad_at_50 is not None, "the canary removed")
            revert = git(remote.bare, "log", "--format=%B", "--grep=Roll back shop 2.1.0",
                         "main")
    finally:
        rc = daemon.stop()
        remote.stop()
        for cell in CELLS:
            fleet.exporter.set_error_rate(cell, 0.0)
    assert rc == 0
    # 2.0.0 in e2e-c1: the mirror before any weight, then 10, 50 and 100 after pauses
    mirror = seen.first(lambda w, m: "2.0.0" in m, t_good)
    w10 = seen.first(lambda w, m: w.get("2.0.0") == 10, t_good)
    w50 = seen.first(lambda w, m: w.get("2.0.0") == 50, t_good)
    w100 = seen.first(lambda w, m: w.get("2.0.0") == 100, t_good)
    assert None not in (mirror, w10, w50, w100), seen.route
    assert mirror is not None and w10 is not None and w50 is not None and w100 is not None
    assert seen.first(lambda w, m: w.get("2.0.0", 0) > 0, t_good) == w10  # none before
    assert mirror < w10 < w50 < w100
    # each step no sooner than the phase before it, as the daemon recorded it, has held
    # (the record is the tick's start, before the route was written: the watcher saw the
    # step a little later)
    for phase, hold, nxt in (("mirror", SHADOW, w10), ("10%", PAUSE, w50),
                             ("50%", PAUSE, w100)):
        start = seen.since.get(("2.0.0", phase))
        assert start is not None, (phase, seen.since)
        assert nxt >= start + hold - 0.05, (phase, start, nxt)
    print(f"canary 2.0.0 in e2e-c1: mirror→10% {w10 - mirror:.2f} s (shadow {SHADOW} s), "
          f"10→50% {w50 - w10:.2f} s, 50→100% {w100 - w50:.2f} s (pause {PAUSE} s)")
    # every cell: the expand before the first traffic; the next wave after e2e-c1's switch
    events = _events(good)
    for cell in CELLS:
        assert _first(events, cell, "migration-expand done") < \
            _first(events, cell, "traffic-mirror done"), cell
    assert _first(events, "e2e-c1", "traffic-switch done") < \
        _first(events, "e2e-z1", "kubernetes-apply done")
    # 2.1.0: aborted at 50% (weight back to 0, the canary removed), one revert naming the
    # ratio
    assert seen.bad_at_50 is not None
    after = [w for t, w, _ in seen.route if t > seen.bad_at_50]
    assert after and after[-1].get("2.1.0", 0) == 0, after
    assert all(w.get("2.1.0", 0) <= 50 for w in after), after
    assert re.search(r"ratio [0-9.]+ > maxRatio 1\.5", revert), revert
    subjects = git(remote.bare, "log", "--format=%s", "main").splitlines()
    assert sum(1 for s in subjects if s.startswith("Roll back shop 2.1.0")) == 1
    ns = next(n for n, c in _namespaces(fleet).items() if c == "e2e-c1")
    deployments = {d["metadata"]["name"]: d for d in _items(
        fleet, f"/apis/apps/v1/namespaces/{ns}/deployments")}
    services = {s["metadata"]["name"] for s in _items(
        fleet, f"/api/v1/namespaces/{ns}/services")}
    assert len(deployments) == 1, sorted(deployments)  # the canary's colour removed
    (name, left), = deployments.items()
    assert left["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
    canary = "shop-blue" if name == "shop-green" else "shop-green"
    assert name in services and canary not in services, sorted(services)
