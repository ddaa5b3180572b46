"""``reconciler demo``: the whole workflow on this machine, in a few minutes.

Owns: starting the local parts (Kubernetes control plane with KWOK nodes, PostgreSQL,
Prometheus with a test exporter), a Git repository seeded from ``example-repo`` with
short bake times, then: install, promote a version bump wave by wave (migration expanded
before, contracted after), push a bad version and watch the canary roll back with a
revert commit. Everything is removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.compose.reconciler import LocalSettings, local_reconciler
from reconciler.engine.tick import Reconciler, TickReport
from reconciler.localparts.prometheus import TestExporter

Say = Callable[[str], None]
SECRET_ENV = "SHOP_DB_PASSWORD"


class DemoUnavailable(RuntimeError):
    """A part the demo needs is missing; the message says how to install it."""


def _check_parts() -> None:
    from reconciler.localparts.k8s import K8sUnavailable, find_binaries
    from reconciler.localparts.postgres import PostgresUnavailable, find_bindir
    from reconciler.localparts.prometheus import prometheus_binary

    try:
        find_binaries()
    except K8sUnavailable as e:
        raise DemoUnavailable(
            f"{e}\n  build them once with: bash hack/k8s-testenv/build.sh") from None
    try:
        find_bindir()
    except PostgresUnavailable as e:
        raise DemoUnavailable(f"{e}\n  install with: apt-get install postgresql") from None
    if prometheus_binary() is None:
        raise DemoUnavailable("prometheus not found\n  install with: apt-get install prometheus")


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "app-team", "GIT_AUTHOR_EMAIL": "dev@shop.example",
           "GIT_COMMITTER_NAME": "app-team", "GIT_COMMITTER_EMAIL": "dev@shop.example"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, text=True,
                          capture_output=True).stdout.strip()


def _seed(example: Path, repo: Path, kubeconfig: Path, pg_port: int, pg_user: str) -> None:
    shutil.copytree(example, repo, ignore=shutil.ignore_patterns("status"))
    for f in (repo / "cells").glob("*.yaml"):
        text = re.sub(r"    context: \S+\n", f"    kubeconfig: {kubeconfig}\n", f.read_text())
        text = text.replace("port: 5432", f"port: {pg_port}").replace("user: shop",
                                                                      f"user: {pg_user}")
        f.write_text(text)
    fleet = repo / "reconciler.yaml"
    text = re.sub(r"bake: \S+", "bake: 3s", fleet.read_text())
    text = text.replace("bake: 3s", "bake: 25s", 1)  # the canary bakes long enough to fail
    text = text.replace("[5m]", "[10s]").replace("window: 5m", "window: 15s")
    fleet.write_text(text)
    mig = repo / "migrations" / "api" / "0007-order-currency.yaml"
    mig.write_text(mig.read_text().replace("soak: 1h", "soak: 2s"))
    _set_api(repo, "1.4.2")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "shop fleet: api 1.4.2, worker 2.3.1")


def _set_api(repo: Path, version: str) -> None:
    rel = repo / "releases" / "api.yaml"
    rel.write_text(re.sub(r"version: \S+", f"version: {version}", rel.read_text()))


def _summary(report: TickReport) -> str:
    if report.plan is None:
        return "no plan"
    waves = [w for w in report.plan.waves if w.service == "api"]
    return "  ".join(f"{w.wave}:{w.state}" for w in waves)


def _converge(rec: Reconciler, say: Say, until: Callable[[TickReport], bool],
              timeout: float = 300.0) -> TickReport:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        report = rec.tick()
        for o in report.outcomes:
            if o.status != "done" or o.step.kind in ("kubernetes-apply", "rollback",
                                                      "migration-expand", "migration-contract",
                                                      "revert-commit", "bake"):
                where = o.step.cell or o.step.wave or ""
                say(f"    {o.status:<6} {o.step.kind:<19} {o.step.service:<7} {where:<16} "
                    f"{o.detail[:70]}")
        line = _summary(report)
        if line != last:
            say(f"  api waves: {line}")
            last = line
        if until(report):
            return report
        time.sleep(0.5)
    raise RuntimeError(f"the demo did not converge in {timeout:.0f}s")


def _settled(report: TickReport) -> bool:
    return report.plan is not None and not report.plan.steps and not report.outcomes


@dataclass
class _Demo:
    repo: Path
    rec: Reconciler
    exporter: TestExporter


@contextmanager
def _parts(example: Path, say: Say) -> Iterator[_Demo]:
    from reconciler.localparts.k8s import start_control_plane
    from reconciler.localparts.postgres import start_cluster
    from reconciler.localparts.prometheus import prometheus_with_exporter

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
        stack.callback(shutil.rmtree, work, True)
        say("starting a local Kubernetes control plane (etcd, apiserver, controllers, KWOK)")
        plane = start_control_plane("demo", nodes=3)
        stack.callback(plane.stop)
        say("starting PostgreSQL (one database per cell)")
        pg = start_cluster()
        stack.callback(pg.destroy)
        cells = sorted(p.stem for p in (example / "cells").glob("*.yaml"))
        for cell in cells:
            pg.create_database("cell_" + cell.replace("-", "_"))
        os.environ[SECRET_ENV] = pg.password
        say("starting Prometheus scraping a test exporter of per-cell error rates")
        prom, exporter = stack.enter_context(prometheus_with_exporter(cells))
        repo = work / "fleet"
        _seed(example, repo, plane.kubeconfig, pg.port, pg.user)
        rec = local_reconciler(LocalSettings(repo, work / "state", prom.url))
        yield _Demo(repo, rec, exporter)


def run_demo(example: Path, say: Say = print) -> int:
    """Run the demo; 0 on success."""
    _check_parts()
    with _parts(example, say) as demo:
        repo, rec, exporter = demo.repo, demo.rec, demo.exporter
        say("\n1. install: api 1.4.2 and worker 2.3.1 on 14 cells")
        _converge(rec, say, _settled)
        say("\n2. a pull request bumps api to 1.5.0 for every group; migration 0007 goes "
            "with it")
        _set_api(repo, "1.5.0")
        _git(repo, "commit", "-q", "-am", "api 1.5.0 everywhere")
        _converge(rec, say, _settled)
        say("\n3. a bad version: api 1.6.0; the canary's error rate breaches its alarm")
        _set_api(repo, "1.6.0")
        _git(repo, "commit", "-q", "-am", "api 1.6.0 everywhere")
        canaries = ("euw1-canary-01", "euw1-canary-02")

        def canary_on_new(report: TickReport) -> bool:
            return any(o.step.kind == "kubernetes-apply" and o.step.cell in canaries
                       for o in report.outcomes)

        _converge(rec, say, canary_on_new)
        for cell in canaries:
            exporter.set_error_rate(cell, 0.4)
        _converge(rec, say, lambda r: any(o.step.kind == "revert-commit"
                                          for o in r.outcomes))
        for cell in canaries:
            exporter.set_error_rate(cell, 0.0)
        say("\n   the revert commit the reconciler made:")
        for line in _git(repo, "log", "-1", "--format=%h %an: %B").splitlines():
            say(f"     {line}")
        _converge(rec, say, _settled)
        say("\ndone: later waves never ran 1.6.0; Git says 1.5.0 again. Cleaning up.")
    return 0
