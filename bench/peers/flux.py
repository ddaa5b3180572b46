"""Side by side with Flux (issue #19 item 4; results in docs/benchmarks.md).

One local control plane (reconciler.localparts.k8s), used in turn by:

1. Flux: its source-controller and kustomize-controller (built by bench/peers/build-flux.sh)
   as local processes against the plane's kubeconfig (all namespaces, no leader election,
   metrics and health on free loopback ports, artifact storage served on loopback), the
   fleet's rendered per-cell objects (Namespace, ConfigMap, Deployment of
   bench/fleet_daemon.py's fleet, rendered as the daemon renders them) in a Git repository
   served by the project's Git HTTP server (git-http-backend, basic auth), one
   Kustomization per cell (path ``cells/<cell>``), namespaces ``flux-<cell>``, each with
   its own GitRepository (``--sources per-cell``, the default) or all reading one
   (``--sources shared``: one clone per interval instead of one per cell). Measured
   twice:
   - default: the intervals of ``flux bootstrap`` (GitRepository 1m, Kustomization 10m),
     nothing requested;
   - best: minimum intervals (``--best-interval``) and a reconcile requested after each
     push the way ``flux reconcile kustomization --with-source`` does: the
     ``reconcile.fluxcd.io/requestedAt`` annotation on the GitRepository, then, once its
     ``status.lastHandledReconcileAt`` has that token, on the Kustomization (every cell at
     once, as a script looping over the CLI in parallel would).
   Then both controllers are stopped.
2. The reconciler: bench/fleet_daemon.py's Bench (a real ``reconciler run``, same fleet,
   webhook after each push) on the same plane, namespaces ``bench-<cell>``.

Measures, for each side: commit → first cell applied (a Deployment carries the new image),
commit → all cells applied, hand-made drift (``kubectl scale`` to 3) → healed (back to 1).
The clock starts when ``git push`` returns (the webhook or the reconcile request is inside
the measure). Flux has no waves: it applies every cell at once; the reconciler rolls out
in its fleet's 4 waves (zero bake).

Usage: python bench/peers/flux.py [--cells 100] [--rounds 3] [--best-interval 5s]
       [--sides default,best,reconciler] [--drift-cells 5] [--sources per-cell|shared]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fleet_daemon

from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.localparts.k8s import ControlPlane, free_port, start_control_plane
from reconciler.testing.gitserver import HttpGitServer, git, seed_bare

FLUX_VERSION = os.environ.get("FLUX_VERSION", "v1.9.6")  # bench/peers/build-flux.sh
BUILD = Path(__file__).resolve().with_name("build-flux.sh")
NS = "flux-system"
USER, PASSWORD = "flux", "bench-password"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
FLUX_LABEL = "kustomize.toolkit.fluxcd.io/name"
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Setting:
    """One Flux configuration: the objects' intervals, and whether pushes are requested."""

    name: str
    source_interval: str
    kustomization_interval: str
    request: bool


DEFAULT = Setting("default", "1m", "10m", request=False)  # flux bootstrap's gotk-sync.yaml


# ---------------------------------------------------------------- pure parts


def render_cell(cell: str, version: str) -> str:
    """The cell's objects as the daemon renders the bench fleet (fleet_daemon.MANIFESTS,
    ``terraform.queue`` = the stack's output ``orders-<cell>``), in ``flux-<cell>``, with
    the Namespace first (Flux does not create namespaces)."""
    ns = f"flux-{cell}"
    body = (fleet_daemon.MANIFESTS.replace("{{ cell.namespace }}", ns)
            .replace("{{ terraform.queue }}", f"orders-{cell}")
            .replace("{{ version }}", version))
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{body}"


def write_cells(repo: Path, cells: Iterable[str], version: str) -> None:
    """``cells/<cell>/app.yaml`` for every cell (Flux generates the kustomization.yaml)."""
    for cell in cells:
        d = repo / "cells" / cell
        d.mkdir(parents=True, exist_ok=True)
        (d / "app.yaml").write_text(render_cell(cell, version))


#: The one GitRepository of ``--sources shared``.
SHARED_SOURCE = "fleet"


def source_of(cell: str, shared: bool) -> str:
    """The GitRepository a cell's Kustomization reads."""
    return SHARED_SOURCE if shared else f"cell-{cell}"


def _source(name: str, url: str, s: Setting) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": NS}, "spec": {
                "interval": s.source_interval, "url": url, "ref": {"branch": "main"},
                "secretRef": {"name": "git-auth"}}}


def flux_objects(cells: Iterable[str], url: str, s: Setting,
                 shared: bool = False) -> list[dict[str, Any]]:
    """One Kustomization per cell, in ``flux-system``, each with its own GitRepository
    (``shared``: one GitRepository for all, first)."""
    out: list[dict[str, Any]] = [_source(SHARED_SOURCE, url, s)] if shared else []
    for cell in cells:
        if not shared:
            out.append(_source(source_of(cell, shared), url, s))
        out.append({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                    "metadata": {"name": f"cell-{cell}", "namespace": NS}, "spec": {
                        "interval": s.kustomization_interval, "path": f"./cells/{cell}",
                        "prune": True, "sourceRef": {"kind": "GitRepository",
                                                     "name": source_of(cell, shared)}}})
    return out


def stats(xs: list[float]) -> dict[str, float]:
    """median/min/max (s) and the count of a measure."""
    return {"median_s": round(statistics.median(xs), 3), "min_s": round(min(xs), 3),
            "max_s": round(max(xs), 3), "n": len(xs)}


def poll_first(n: int) -> float:
    """Seconds between Flux's lists while waiting for its first cell: each lists every
    Deployment (any cell may be first), so at 1,000 cells (megabytes a list) 0.5 s, not
    to take the 2 cores from the controllers measured."""
    return max(0.05, n / 2000)


def poll_all(n: int) -> float:
    """Seconds between the lists of every Deployment while waiting for all cells (both
    sides): 0.2 s at 100 cells, 1 s at 1,000."""
    return max(0.2, n / 1000)


def ratio(theirs: dict[str, float] | None, ours: dict[str, float] | None) -> float | None:
    """How many times faster the reconciler's median is (None when one is missing)."""
    if not theirs or not ours or ours["median_s"] <= 0:
        return None
    return round(theirs["median_s"] / ours["median_s"], 1)


# ---------------------------------------------------------------- Flux


def flux_binaries() -> Path:
    """The directory bench/peers/build-flux.sh builds (and reuses when warm)."""
    out = subprocess.run(["bash", str(BUILD)], check=True, capture_output=True, text=True,
                         env={**os.environ, "FLUX_VERSION": FLUX_VERSION})
    return Path(out.stdout.strip().splitlines()[-1])


class Controllers:
    """source-controller and kustomize-controller as local processes against ``plane``."""

    def __init__(self, plane: ControlPlane, bins: Path, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        storage = free_port()
        (work / "storage").mkdir(exist_ok=True)
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "RUNTIME_NAMESPACE": NS}
        common = ["--watch-all-namespaces=true", "--enable-leader-election=false",
                  "--log-encoding=json", "--log-level=info"]
        argv = {
            "source-controller": [*common, f"--health-addr=127.0.0.1:{free_port()}",
                                  f"--storage-path={work / 'storage'}",
                                  f"--storage-addr=127.0.0.1:{storage}",
                                  f"--storage-adv-addr=127.0.0.1:{storage}"],
            "kustomize-controller": [*common, f"--health-addr=127.0.0.1:{free_port()}"],
        }
        for name, args in argv.items():
            args.append(f"--metrics-addr=127.0.0.1:{free_port()}")
            with (work / f"{name}.log").open("ab") as log:
                self.procs[name] = subprocess.Popen(
                    [str(bins / name), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)

    def check(self) -> None:
        """Raise when a controller has exited."""
        for name, p in self.procs.items():
            if p.poll() is not None:
                tail = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{name} exited ({p.returncode}):\n{tail}")

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


class FluxSide:
    """The Flux half: CRDs, credentials, the Git repository, the controllers, the objects."""

    def __init__(self, stack: ExitStack, plane: ControlPlane, tmp: Path, n: int,
                 shared: bool = False) -> None:
        self.plane, self.tmp, self.shared = plane, tmp, shared
        self.cells = [c for c, _ in fleet_daemon.groups_of(n)]
        self.kube = KubeClient(Target(str(plane.kubeconfig)), timeout=60.0)
        bins = flux_binaries()
        plane.kubectl("apply", "--server-side", "-f", str(bins / "crds"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                      "crd/gitrepositories.source.toolkit.fluxcd.io",
                      "crd/kustomizations.kustomize.toolkit.fluxcd.io")
        plane.create_namespace(NS)
        self.kube.request("POST", f"/api/v1/namespaces/{NS}/secrets", body={
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git-auth"},
            "stringData": {"username": USER, "password": PASSWORD}})
        seed = tmp / "flux-seed"
        write_cells(seed, self.cells, "1.0.0")
        (tmp / "flux-srv").mkdir()
        self.bare = seed_bare(tmp / "flux-srv", "flux.git", seed)
        self.server = HttpGitServer(tmp / "flux-srv", USER, PASSWORD).start()
        stack.callback(self.server.stop)
        self.human = tmp / "flux-human"
        git(tmp, "clone", "-q", str(self.bare), str(self.human))
        self.version = 1
        self.ctl = Controllers(plane, bins, tmp)
        stack.callback(self.ctl.stop)

    def configure(self, s: Setting) -> None:
        """Apply (or re-apply) the GitRepositories and Kustomizations with ``s``."""
        docs = flux_objects(self.cells, self.server.url("flux.git"), s, self.shared)
        self.plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                           stdin="\n---\n".join(json.dumps(d) for d in docs))

    def push(self, version: str) -> float:
        write_cells(self.human, self.cells, version)
        git(self.human, "commit", "-qam", f"bump shop to {version}")
        git(self.human, "push", "-q", "origin", "main")
        return time.monotonic()

    def images(self) -> dict[str, str]:
        doc = self.kube.request("GET", "/apis/apps/v1/deployments",
                                {"labelSelector": FLUX_LABEL})
        return {d["metadata"]["namespace"]: d["spec"]["template"]["spec"]["containers"][0]
                ["image"] for d in doc.get("items", [])}

    def applied(self, version: str) -> int:
        want = f"registry.local/shop:{version}"
        return sum(1 for img in self.images().values() if img == want)

    def wait(self, cond: Callable[[], bool], what: str, timeout: float,
             every: float = 0.05) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return time.monotonic()
            self.ctl.check()
            time.sleep(every)
        raise SystemExit(f"flux: timed out after {timeout:.0f}s waiting for {what}")

    def replicas(self, cell: str) -> int:
        d = self.kube.get(f"/apis/apps/v1/namespaces/flux-{cell}/deployments/shop") or {}
        return int(d.get("spec", {}).get("replicas", -1))


def request_reconcile(kube: KubeClient, sources: dict[str, str],
                      stop: threading.Event) -> None:
    """What ``flux reconcile kustomization <name> --with-source`` does, for every
    Kustomization at once (``sources``: Kustomization → its GitRepository): annotate the
    GitRepositories, wait until each has handled that request, then annotate its
    Kustomizations."""
    token = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    patch = {"metadata": {"annotations": {REQUESTED_AT: token}}}
    src = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{NS}/gitrepositories"
    ks = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{NS}/kustomizations"
    for name in sorted(set(sources.values())):
        kube.request("PATCH", f"{src}/{name}", body=patch, content_type=MERGE)
    pending = dict(sources)
    while pending and not stop.is_set():
        handled = {item["metadata"]["name"] for item in kube.request("GET", src).get("items", [])
                   if item.get("status", {}).get("lastHandledReconcileAt") == token}
        for name in [k for k, source in pending.items() if source in handled]:
            kube.request("PATCH", f"{ks}/{name}", body=patch, content_type=MERGE)
            del pending[name]
        time.sleep(0.05)


def _flux_commit(f: FluxSide, s: Setting) -> tuple[float, float]:
    """One bump: (commit → first cell applied, commit → all cells applied)."""
    f.version += 1
    v = f"{f.version}.0.0"
    t0 = f.push(v)
    stop = threading.Event()
    if s.request:
        kube = KubeClient(Target(str(f.plane.kubeconfig)), timeout=60.0)
        sources = {f"cell-{c}": source_of(c, f.shared) for c in f.cells}
        threading.Thread(target=request_reconcile, args=(kube, sources, stop),
                         daemon=True).start()
    limit = 120.0 + 2 * len(f.cells) + (0 if s.request else 60)
    try:
        first = f.wait(lambda: f.applied(v) >= 1, "the first cell", limit,
                       every=poll_first(len(f.cells))) - t0
        every = f.wait(lambda: f.applied(v) >= len(f.cells), "every cell", limit,
                       every=poll_all(len(f.cells))) - t0
    finally:
        stop.set()
    return first, every


def _flux_drift(f: FluxSide, cells: list[str], timeout: float) -> list[float]:
    """Scale ``cells``' Deployments to 3 at once; each one's time until back at 1."""
    for cell in cells:
        f.plane.kubectl("scale", "deployment", "shop", "-n", f"flux-{cell}", "--replicas=3")
    t0, left, out = time.monotonic(), set(cells), []
    deadline = t0 + timeout
    while left and time.monotonic() < deadline:
        for cell in sorted(left):
            if f.replicas(cell) == 1:
                out.append(time.monotonic() - t0)
                left.discard(cell)
        f.ctl.check()
        time.sleep(0.1)
    if left:
        raise SystemExit(f"flux: drift on {sorted(left)} not healed within {timeout:.0f}s")
    return out


def measure_flux(f: FluxSide, s: Setting, rounds: int, drift_cells: int,
                 drift_timeout: float) -> dict[str, Any]:
    """Configure ``s``, wait until every cell runs the current version, then measure."""
    f.configure(s)
    t0 = time.monotonic()
    current = f"{f.version}.0.0"
    f.wait(lambda: f.applied(current) >= len(f.cells), "the install",
           timeout=600 + 2 * len(f.cells), every=1.0)
    out: dict[str, Any] = {"setting": s.__dict__, "ready_s": round(time.monotonic() - t0, 1)}
    firsts, alls = [], []
    for _ in range(rounds):
        first, every = _flux_commit(f, s)
        firsts.append(first)
        alls.append(every)
    out["commit_to_first_cell_applied"] = stats(firsts)
    out["commit_to_all_cells_applied"] = stats(alls)
    print(json.dumps({f"flux_{s.name}_commits": out}), file=sys.stderr, flush=True)
    # Drift is healed at a Kustomization's next interval (nobody requests it): several
    # cells drift at once, each one's time is a sample of one window.
    out["drift_to_healed"] = stats(_flux_drift(f, f.cells[-drift_cells:], drift_timeout))
    return out


# ---------------------------------------------------------------- the reconciler


def measure_reconciler(stack: ExitStack, plane: ControlPlane, tmp: Path, n: int,
                       rounds: int) -> dict[str, Any]:
    """bench/fleet_daemon.py's Bench on ``plane``: the same measures."""
    b = fleet_daemon.Bench(stack, tmp, n, "0s", plane=plane)
    t0 = time.monotonic()
    b.wait(lambda: b.finished("1.0.0"), "the install", every=2.0,
           timeout=max(600, 3 * n))
    out: dict[str, Any] = {"ready_s": round(time.monotonic() - t0, 1)}
    firsts, alls = [], []
    for _ in range(rounds):
        v = b.next_version()
        t0 = b.push(v)
        firsts.append(b.wait(partial(b.canary_on, v), "the canary") - t0)
        alls.append(b.wait(partial(b.everywhere, v), "every cell", every=poll_all(n),
                           timeout=max(600, 2 * n)) - t0)
        b.wait(partial(b.finished, v), "the waves done", every=0.5,
               timeout=max(600, 2 * n))
        b.current = v
    out["commit_to_first_cell_applied"] = stats(firsts)
    out["commit_to_all_cells_applied"] = stats(alls)
    out["drift_to_healed"] = stats([fleet_daemon._heal(b, i) for i in range(rounds)])
    return out


# ---------------------------------------------------------------- main

MEASURES = ("commit_to_first_cell_applied", "commit_to_all_cells_applied", "drift_to_healed")
SIDES = ("default", "best", "reconciler")


def table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """measure, reconciler, Flux default, Flux best (medians, s) and the two ratios."""
    rows = []
    for m in MEASURES:
        ours = result.get("reconciler", {}).get(m)
        dflt = result.get("flux_default", {}).get(m)
        best = result.get("flux_best", {}).get(m)
        rows.append({"measure": m, "reconciler_s": ours and ours["median_s"],
                     "flux_default_s": dflt and dflt["median_s"],
                     "flux_best_s": best and best["median_s"],
                     "x_vs_default": ratio(dflt, ours), "x_vs_best": ratio(best, ours)})
    return rows


def _partial(side: str, result: dict[str, Any]) -> None:
    """One side's figures on stderr as soon as they exist (a later failure keeps them)."""
    print(json.dumps({side: result[side]}), file=sys.stderr, flush=True)


def _reconciler_side(plane: ControlPlane, tmp: Path, n: int, rounds: int,
                     result: dict[str, Any], load: list[float]) -> None:
    with ExitStack() as stack:
        result["reconciler"] = measure_reconciler(stack, plane, tmp, n, rounds)
        load.append(round(os.getloadavg()[0], 2))
        _partial("reconciler", result)


def run(n: int, rounds: int, sides: tuple[str, ...], best_interval: str,
        drift_cells: int, drift_timeout: float, shared: bool = False) -> dict[str, Any]:
    load = [round(os.getloadavg()[0], 2)]
    result: dict[str, Any] = {"cells": n, "rounds": rounds, "flux_version": FLUX_VERSION,
                              "sources": "shared" if shared else "per-cell"}
    tmp = Path(tempfile.mkdtemp(prefix="reconciler-peer-flux-"))
    try:
        with ExitStack() as outer:
            plane = start_control_plane("peers", nodes=4)
            outer.callback(plane.stop)
            reconciler = partial(_reconciler_side, plane, tmp / "rec", n, rounds, result, load)
            if sides and sides[0] == "reconciler":  # first, as asked
                reconciler()
            if {"default", "best"} & set(sides):
                with ExitStack() as stack:
                    f = FluxSide(stack, plane, tmp, n, shared)
                    best = Setting("best", best_interval, best_interval, request=True)
                    for s in sorted((DEFAULT, best), key=lambda s: (
                            sides.index(s.name) if s.name in sides else len(sides))):
                        if s.name in sides:
                            result[f"flux_{s.name}"] = measure_flux(
                                f, s, rounds, min(drift_cells, n), drift_timeout)
                            load.append(round(os.getloadavg()[0], 2))
                            _partial(f"flux_{s.name}", result)
            if "reconciler" in sides[1:]:
                reconciler()
    except SystemExit:
        print(f"kept for inspection: {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, True)
    result["table"] = table(result)
    result["load_average_1m"] = load
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"Python {platform.python_version()}")
    return result


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _: sys.exit(f"stopped by signal {n}"))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=100, help="at least 5 (the fleet's 4 waves)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sides", default=",".join(SIDES),
                    help=f"comma-separated subset of {', '.join(SIDES)}, run in that order "
                         "(the reconciler first or last)")
    ap.add_argument("--best-interval", default="5s",
                    help="Flux best: the GitRepository and Kustomization interval")
    ap.add_argument("--drift-cells", type=int, default=5,
                    help="Flux: cells drifted at once (one interval's window)")
    ap.add_argument("--drift-timeout", type=float, default=720.0,
                    help="seconds to wait for Flux to heal a drift")
    ap.add_argument("--sources", choices=("per-cell", "shared"), default="per-cell",
                    help="Flux: one GitRepository per cell, or one shared by every "
                         "Kustomization (fewer clones: for 1,000 cells)")
    args = ap.parse_args()
    if args.cells < 5:
        ap.error("--cells: at least 5 (every wave of the fleet needs a cell)")
    sides = tuple(x.strip() for x in args.sides.split(",") if x.strip())
    if set(sides) - set(SIDES):
        ap.error(f"unknown sides: {', '.join(sorted(set(sides) - set(SIDES)))}")
    print(json.dumps(run(args.cells, args.rounds, sides, args.best_interval,
                         args.drift_cells, args.drift_timeout, args.sources == "shared"),
                     indent=2))


if __name__ == "__main__":
    main()
