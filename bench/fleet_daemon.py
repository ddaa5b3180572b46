"""End-to-end benchmarks of the daemon on the real parts (docs/benchmarks.md).

A local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes),
Prometheus scraping a test exporter of per-cell error rates, a Git remote served by
git-http-backend over HTTP with basic auth, and a real ``reconciler run`` process:

1. commit → canary applied: push a bump, send the signed webhook, time until the
   canary's Deployment in the cluster carries the new image (polled every 20 ms);
2. alarm breach → revert pushed: set the canary's error rate over the threshold while it
   bakes, time until the revert commit is on the remote and the canary runs the old
   image again;
3. a 4-wave rollout of N cells (default 100) with zero bake time: push, time until every
   cell's Deployment carries the new image and every wave is done in Git status;
4. out-of-band change → healed: ``kubectl scale`` a cell's Deployment to 3 replicas, time
   until the daemon (woken by its Kubernetes watch) has set it back to 1.

The generated fleet: one service with a Terraform stack (terraform_data: no provider
download) and a ConfigMap + Deployment, waves canary (1 cell) → zone → region → rest.

With ``--replicas N`` (N > 1) N ``reconciler run`` processes share the fleet through
shard Leases on the same control plane (``shards:``, docs/deploy.md "Several replicas"),
one Terraform state directory between them; the webhook goes to each.

Usage: python bench/fleet_daemon.py [--cells 100] [--rounds 5] [--replicas 1]
       [--scenarios canary,breach,rollout,heal] [--keep] [--stack-reads-version]
       [--concurrency cells=64,kubernetes=16,terraform=8] [--kube-qps 100]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.localparts.k8s import ControlPlane, start_control_plane
from reconciler.localparts.prometheus import prometheus_with_exporter
from reconciler.testing.gitserver import HttpGitServer, free_port, git, seed_bare

USER, PASSWORD, SECRET = "bot", "bench-password", "bench-webhook-secret"
ALARM = ('sum(rate(http_requests_total{cell="{{ cell.name }}",code=~"5.."}[4s])) / '
         'sum(rate(http_requests_total{cell="{{ cell.name }}"}[4s]))')
#: The stack reads no version: since #19 a bump plans no Terraform step for it (only the
#: variables a stack declares are its inputs). ``--stack-reads-version`` declares
#: ``service_version`` too, as the stack before #19 did (every bump re-applies it).
STACK = """\
variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
resource "terraform_data" "queue" { input = "orders-${var.cell}" }
output "queue" { value = terraform_data.queue.output }
"""
MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config, namespace: "{{ cell.namespace }}"}
data: {QUEUE: "{{ terraform.queue }}", VERSION: "{{ version }}"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: "{{ cell.namespace }}"}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: shop, image: "registry.local/shop:{{ version }}"}]
"""


def _doc(kind: str, name: str, spec: object) -> str:
    return yaml.safe_dump({"apiVersion": "reconciler.dev/v1", "kind": kind,
                           "metadata": {"name": name}, "spec": spec}, sort_keys=False)


def groups_of(n: int) -> list[tuple[str, str]]:
    """(cell, group) for n cells: 1 canary, ~10% zone, ~40% region, the rest."""
    zone, region = max(1, n // 10), max(1, (n * 4) // 10)
    out = []
    for i in range(n):
        group = ("canary" if i == 0 else "zone" if i <= zone else
                 "region" if i <= zone + region else "rest")
        out.append((f"b{i:03d}", group))
    return out


def write_fleet(repo: Path, cells: list[tuple[str, str]], kubeconfig: Path,
                canary_bake: str, reads_version: bool = False) -> None:
    waves = [{"name": g, "groups": [g], "bake": canary_bake if g == "canary" else "0s",
              "maxUnavailable": "100%" if g != "canary" else 1}
             for g in ("canary", "zone", "region", "rest")]
    (repo / "cells").mkdir(parents=True)
    (repo / "reconciler.yaml").write_text(_doc("Fleet", "bench", {
        "waves": waves, "selfHeal": True, "rollout": {"canaryMaxWeightPercent": 100},
        "alarms": [{"name": "error-rate", "query": ALARM, "threshold": 0.05,
                    "minSamples": 2, "window": "6s"}]}))
    for name, group in cells:
        (repo / "cells" / f"{name}.yaml").write_text(_doc("Cell", name, {
            "group": group, "region": "r1", "zone": "r1a", "weight": 1,
            "kubernetes": {"namespace": f"bench-{name}", "kubeconfig": str(kubeconfig)},
            "terraform": {"vars": {}}}))
    svc = repo / "services" / "shop"
    (svc / "kubernetes").mkdir(parents=True)
    (svc / "terraform").mkdir()
    (svc / "kubernetes" / "app.yaml").write_text(MANIFESTS)
    (svc / "terraform" / "main.tf").write_text(
        STACK + ('variable "service_version" { type = string }\n' if reads_version else ""))
    (svc / "service.yaml").write_text(_doc("Service", "shop", {
        "kubernetes": {"manifests": ["kubernetes/app.yaml"]},
        "terraform": {"stack": "terraform"}, "health": {"progressDeadline": "60s"}}))
    (repo / "releases").mkdir()
    set_version(repo, "1.0.0")


def set_version(repo: Path, version: str) -> None:
    (repo / "releases" / "shop.yaml").write_text(_doc("Release", "shop", {
        "service": "shop", "versions": [{"groups": ["canary", "zone", "region", "rest"],
                                         "version": version}]}))


class Bench:
    """The parts, the remote, a human clone and the daemon process."""

    def __init__(self, stack: ExitStack, tmp: Path, n: int, canary_bake: str,
                 reads_version: bool = False, daemon: dict[str, object] | None = None,
                 plane: ControlPlane | None = None, replicas: int = 1) -> None:
        """``plane``: a running control plane to use (its owner stops it; the side-by-side
        with Flux, bench/peers/flux.py, runs both on one); else one is started here.
        ``replicas``: reconciler run processes sharing the fleet through shard Leases."""
        self.tmp, self.cells = tmp, groups_of(n)
        self.daemon_extra = daemon or {}
        self.version, self.current = 1, "1.0.0"  # the newest version used; the one running
        if plane is None:
            plane = start_control_plane("bench", nodes=4)
            stack.callback(plane.stop)
        self.plane: ControlPlane = plane
        self.prom, self.exporter = stack.enter_context(prometheus_with_exporter(
            [c for c, _ in self.cells]))
        seed = tmp / "seed"
        write_fleet(seed, self.cells, self.plane.kubeconfig, canary_bake, reads_version)
        self.kube = KubeClient(Target(str(self.plane.kubeconfig)), timeout=60.0)
        (tmp / "srv").mkdir()
        git(seed, "init", "-q", "-b", "main")
        git(seed, "add", "-A")
        git(seed, "commit", "-qm", "bench fleet")
        self.bare = seed_bare(tmp / "srv", "fleet.git", seed)
        self.server = HttpGitServer(tmp / "srv", USER, PASSWORD).start()
        stack.callback(self.server.stop)
        self.human = tmp / "human"
        git(tmp, "clone", "-q", str(self.bare), str(self.human))
        if replicas > 1:
            self.plane.create_namespace("bench-shards")
        self.ports = [free_port() for _ in range(replicas)]
        self.port = self.ports[0]
        self.logs = [tmp / ("daemon.log" if i == 0 else f"daemon-{i}.log")
                     for i in range(replicas)]
        self.log = self.logs[0]
        self.procs = [self._start(i, replicas) for i in range(replicas)]
        self.proc = self.procs[0]
        stack.callback(self._stop)

    def _sharding(self, i: int, replicas: int) -> dict[str, object]:
        if replicas == 1:
            return {}
        return {"shards": {"count": 4 * replicas, "leaseDuration": "15s",
                           "namespace": "bench-shards", "replicaId": f"replica-{i}",
                           "kubeconfig": str(self.plane.kubeconfig)},
                "terraform": {"state_dir": str(self.tmp / "terraform-shared")}}

    def _start(self, i: int = 0, replicas: int = 1) -> subprocess.Popen[bytes]:
        (self.tmp / "pw").write_text(PASSWORD)
        (self.tmp / "hook").write_text(SECRET)
        cfg = self.tmp / ("daemon.yaml" if i == 0 else f"daemon-{i}.yaml")
        cfg.write_text(json.dumps({
            "repo": {"url": self.server.url("fleet.git"),
                     "auth": {"username": USER, "password_file": str(self.tmp / "pw")}},
            "listen": f"127.0.0.1:{self.ports[i]}",
            "state_dir": str(self.tmp / ("state" if i == 0 else f"state-{i}")),
            "webhook_secret_file": str(self.tmp / "hook"), "prometheus_url": self.prom.url,
            "poll_interval": "1h", "reconcile_interval": "2s", "drift_interval": "0",
            "leader": {"kind": "file"}, "log_level": "info",
            "git_author": {"name": "reconciler", "email": "reconciler@bench"},
            **self.daemon_extra, **self._sharding(i, replicas)}))
        return subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                                 str(cfg)], stderr=self.logs[i].open("w"),
                                stdout=subprocess.DEVNULL)

    def _stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(60)

    def push(self, version: str, bake: str | None = None) -> float:
        git(self.human, "pull", "-q", "--rebase")
        set_version(self.human, version)
        if bake is not None:
            path = self.human / "reconciler.yaml"
            doc = yaml.safe_load(path.read_text())
            doc["spec"]["waves"][0]["bake"] = bake
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        git(self.human, "commit", "-qam", f"bump shop to {version}")
        for attempt in range(5):  # the daemon's status pushes race ours: rebase, retry
            try:
                git(self.human, "push", "-q", "origin", "main")
                break
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise
                git(self.human, "pull", "-q", "--rebase")
        t0 = time.monotonic()
        self.webhook()
        return t0

    def webhook(self) -> None:
        import urllib.request
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        for port in self.ports:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body,
                                         method="POST",
                                         headers={"X-Hub-Signature-256": f"sha256={sig}"})
            urllib.request.urlopen(req, timeout=5).read()

    def images(self) -> dict[str, str]:
        """namespace -> image of every bench Deployment (one list call, through the API
        rather than a kubectl process: polling costs the 2 cores little)."""
        doc = self.kube.request("GET", "/apis/apps/v1/deployments",
                                {"labelSelector": "reconciler.dev/service=shop"})
        return {d["metadata"]["namespace"]: d["spec"]["template"]["spec"]["containers"][0]
                ["image"] for d in doc.get("items", [])}

    def _deployment(self, cell: str) -> dict[str, Any]:
        return self.kube.get(f"/apis/apps/v1/namespaces/bench-{cell}/deployments/shop") or {}

    def next_version(self) -> str:
        self.version += 1
        return f"{self.version}.0.0"

    def replicas(self, cell: str) -> str:
        return str(self._deployment(cell).get("spec", {}).get("replicas", ""))

    def image_of(self, cell: str) -> str:
        spec = self._deployment(cell).get("spec", {})
        return str(spec.get("template", {}).get("spec", {}).get("containers", [{}])[0]
                   .get("image", ""))

    def canary_on(self, version: str) -> bool:
        return self.image_of(self.cells[0][0]).endswith(f":{version}")

    def reverts(self) -> int:
        return int(git(self.bare, "rev-list", "--count", "--grep", "Roll back", "main"))

    def reverted(self, before: int) -> bool:
        return self.reverts() > before

    def finished(self, version: str) -> bool:
        return self.waves_done(version) and self.everywhere(version)

    def waves_done(self, version: str) -> bool:
        try:
            text = git(self.bare, "show", "main:status/rollouts/shop.yaml")
        except subprocess.CalledProcessError:
            return False
        waves = (yaml.safe_load(text) or {}).get("waves", {})
        return len(waves) == 4 and all(w.get("state") == "done" and
                                       str(w.get("version")) == version
                                       for w in waves.values())

    def wait(self, cond: Callable[[], bool], what: str, timeout: float = 600,
             every: float = 0.02) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return time.monotonic()
            for proc, log in zip(self.procs, self.logs, strict=True):
                if proc.poll() is not None:
                    raise SystemExit(f"a daemon exited:\n{log.read_text()[-3000:]}")
            time.sleep(every)
        raise SystemExit(f"timed out waiting for {what}\n{self.log.read_text()[-3000:]}")

    def everywhere(self, version: str) -> bool:
        images = self.images()
        want = f"registry.local/shop:{version}"
        return len(images) >= len(self.cells) and all(
            images.get(f"bench-{c}") == want for c, _ in self.cells)


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(xs), 3), "max_s": round(max(xs), 3),
            "min_s": round(min(xs), 3), "n": len(xs)}


SCENARIOS = ("canary", "breach", "rollout", "heal")


def run(n: int, rounds: int, scenarios: tuple[str, ...] = SCENARIOS,
        keep: bool = False, reads_version: bool = False,
        daemon: dict[str, object] | None = None, replicas: int = 1) -> dict[str, object]:
    load_before = os.getloadavg()
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
        b = Bench(stack, tmp, n, "0s", reads_version, daemon, replicas=replicas)
        try:
            result = _measure(b, rounds, scenarios)
        except SystemExit:
            print(f"kept for inspection: {tmp} (daemon.log, srv/fleet.git)", file=sys.stderr)
            raise
    if keep:
        print(f"kept: {tmp} (daemon.log, srv/fleet.git)", file=sys.stderr)
    else:
        shutil.rmtree(tmp, True)
    return {"cells": n, "replicas": replicas, "stack_reads_version": reads_version,
            "daemon": daemon or {},
            **result, "load_average_1m": {"before": round(load_before[0], 2),
                                          "after": round(os.getloadavg()[0], 2)},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                       f"Python {platform.python_version()}"}


def _measure(b: Bench, rounds: int, scenarios: tuple[str, ...]) -> dict[str, object]:
    """The chosen measurements on a running bench (see the module docstring)."""
    t0 = time.monotonic()
    b.wait(partial(b.finished, "1.0.0"), "the install", every=2.0,
           timeout=max(600, 3 * len(b.cells)))
    out: dict[str, object] = {"install_s": round(time.monotonic() - t0, 1)}
    if "canary" in scenarios:
        out["commit_to_canary_applied"] = _stats([_to_canary(b) for _ in range(rounds)])
    if "breach" in scenarios:
        pushed, back = zip(*(_breach(b) for _ in range(rounds)), strict=True)
        out["breach_to_revert_pushed"] = _stats(list(pushed))
        out["breach_to_canary_rolled_back"] = _stats(list(back))
    if "rollout" in scenarios:
        out["four_wave_rollout_zero_bake"] = _stats([
            _rollout(b) for _ in range(max(1, rounds // 2))])
    if "heal" in scenarios:
        out["out_of_band_scale_to_healed"] = _stats([_heal(b, i) for i in range(rounds)])
    return out


def _to_canary(b: Bench) -> float:
    """1: commit → canary applied (zero bake: each bump then rolls out everywhere)."""
    v = b.next_version()
    t0 = b.push(v)
    took = b.wait(partial(b.canary_on, v), "the canary") - t0
    b.wait(partial(b.finished, v), "the rollout", every=0.5,
           timeout=max(600, 2 * len(b.cells)))
    b.current = v
    return took


def _breach(b: Bench) -> tuple[float, float]:
    """2: alarm breach → (revert pushed, canary back on the good version)."""
    canary, good, bad = b.cells[0][0], b.current, b.next_version()
    b.push(bad, bake="120s")
    b.wait(partial(b.canary_on, bad), "the bad canary")
    before = b.reverts()
    t0 = time.monotonic()
    b.exporter.set_error_rate(canary, 0.5)
    pushed = b.wait(partial(b.reverted, before), "the revert pushed", timeout=120, every=0.05)
    rolled = b.wait(partial(b.canary_on, good), "the canary rolled back", timeout=120)
    b.exporter.set_error_rate(canary, 0.0)
    time.sleep(8)  # the alarm window passes before the next bump
    b.push(good, bake="0s")  # the fleet stays on ``good``; the canary bake back to 0
    return pushed - t0, rolled - t0


def _rollout(b: Bench) -> float:
    """3: a 4-wave rollout of every cell, zero bake."""
    v = b.next_version()
    t0 = b.push(v)
    took = b.wait(partial(b.finished, v), "the rollout", every=0.2,
                  timeout=max(600, 2 * len(b.cells))) - t0
    b.current = v
    return took


def _heal(b: Bench, i: int) -> float:
    """4: a Deployment scaled by hand → seen by the watch and scaled back by the daemon."""
    cell = b.cells[-1 - i % len(b.cells)][0]
    b.plane.kubectl("scale", "deployment", "shop", "-n", f"bench-{cell}", "--replicas=3")
    t0 = time.monotonic()
    return b.wait(lambda: b.replicas(cell) == "1", "the scale healed", timeout=120) - t0


def main() -> None:
    # SIGTERM (or SIGINT, ignored in a background job) unwinds: the daemon, Prometheus and
    # the control plane are stopped, not left running.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _: sys.exit(f"stopped by signal {n}"))
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    ap.add_argument("--keep", action="store_true",
                    help="keep the bench directory (daemon.log, the Git remote)")
    ap.add_argument("--stack-reads-version", action="store_true",
                    help="the stack declares service_version (every bump applies it)")
    ap.add_argument("--concurrency", default="",
                    help="the daemon's concurrency bounds, e.g. cells=128,terraform=4")
    ap.add_argument("--replicas", type=int, default=1,
                    help="reconciler run processes sharing the fleet through shard Leases")
    ap.add_argument("--kube-qps", type=float, default=None,
                    help="the daemon's kubernetes.qps (burst: twice that)")
    args = ap.parse_args()
    daemon: dict[str, object] = {}
    if args.concurrency:
        daemon["concurrency"] = {k: int(v) for k, v in
                                 (kv.split("=", 1) for kv in args.concurrency.split(","))}
    if args.kube_qps is not None:
        daemon["kubernetes"] = {"qps": args.kube_qps, "burst": max(1, int(2 * args.kube_qps))}
    chosen = tuple(x.strip() for x in args.scenarios.split(",") if x.strip())
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    print(json.dumps(run(args.cells, args.rounds, chosen, args.keep,
                         args.stack_reads_version, daemon, args.replicas), indent=2))


if __name__ == "__main__":
    main()
