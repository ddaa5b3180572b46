"""``reconciler demo``: the whole workflow on this machine, through the real daemon.

Owns: starting the local parts (Kubernetes control plane with KWOK nodes, PostgreSQL,
Prometheus with a test exporter), a bare Git repository seeded from ``example-repo``
with short bake times, and the daemon ``reconciler run`` builds (``compose``) following
it. A person's clone pushes: install, a version bump promoted wave by wave (migration
expanded before, contracted after), then a bad version whose canary breaches its alarm:
the daemon rolls the canary back and pushes one revert commit. The narrative comes from
the daemon's tick reports; everything is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.compose.daemon import build_daemon
from reconciler.core.plan import StepKind
from reconciler.daemon import logs
from reconciler.daemon.config import DaemonConfig, LeaderConfig, RepoConfig
from reconciler.daemon.service import Daemon
from reconciler.daemon.ticks import TickWatch, ran, settled
from reconciler.engine.executor import Outcome, OutcomeStatus
from reconciler.engine.tick import TickReport
from reconciler.localparts.prometheus import TestExporter

Say = Callable[[str], None]
SECRET_ENV = "SHOP_DB_PASSWORD"
CANARIES = ("euw1-canary-01", "euw1-canary-02")
BAD = "1.6.0"
#: The longest any step of the demo may take on a slow machine (seconds).
WAIT = 600
#: Outcomes worth a line in the narrative (every failure is shown too).
SHOWN = (StepKind.KUBERNETES_APPLY, StepKind.ROLLBACK, StepKind.MIGRATION_EXPAND,
         StepKind.MIGRATION_CONTRACT, StepKind.REVERT_COMMIT, StepKind.BAKE)
HUMAN = {"GIT_AUTHOR_NAME": "app-team", "GIT_AUTHOR_EMAIL": "dev@shop.example",
         "GIT_COMMITTER_NAME": "app-team", "GIT_COMMITTER_EMAIL": "dev@shop.example"}


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
    if shutil.which("bwrap") is None:
        raise DemoUnavailable("bwrap not found (the daemon runs Terraform in bubblewrap)\n"
                              "  install with: apt-get install bubblewrap")


def git(repo: Path, *args: str) -> str:
    """``git`` in ``repo`` as the app team."""
    return subprocess.run(["git", *args], cwd=repo, env={**os.environ, **HUMAN}, check=True,
                          text=True, capture_output=True).stdout.strip()


def push(clone: Path, attempts: int = 10) -> None:
    """Push like a person: the daemon pushes status to the same branch, so rebase on what
    it pushed and try again."""
    for _ in range(attempts):
        try:
            git(clone, "pull", "-q", "--rebase", "origin", "main")
            git(clone, "push", "-q", "origin", "HEAD:main")
            return
        except subprocess.CalledProcessError:
            time.sleep(0.5)
    git(clone, "push", "-q", "origin", "HEAD:main")


def _seed(example: Path, clone: Path, kubeconfig: Path, pg_port: int, pg_user: str) -> None:
    shutil.copytree(example, clone, ignore=shutil.ignore_patterns("status"))
    for f in (clone / "cells").glob("*.yaml"):
        text = re.sub(r"    context: \S+\n", f"    kubeconfig: {kubeconfig}\n", f.read_text())
        text = text.replace("port: 5432", f"port: {pg_port}").replace("user: shop",
                                                                      f"user: {pg_user}")
        f.write_text(text)
    fleet = clone / "reconciler.yaml"
    text = re.sub(r"bake: \S+", "bake: 3s", fleet.read_text())
    text = text.replace("bake: 3s", "bake: 40s", 1)  # the canary bakes long enough to fail
    text = text.replace("[5m]", "[10s]").replace("window: 5m", "window: 15s")
    fleet.write_text(text)
    mig = clone / "migrations" / "api" / "0007-order-currency.yaml"
    mig.write_text(mig.read_text().replace("soak: 1h", "soak: 2s"))
    set_api(clone, "1.4.2")
    git(clone, "init", "-q", "-b", "main")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", "shop fleet: api 1.4.2, worker 2.3.1")


def set_api(clone: Path, version: str) -> None:
    """Set every group of the api release to ``version`` in the working tree."""
    rel = clone / "releases" / "api.yaml"
    rel.write_text(re.sub(r"version: \S+", f"version: {version}", rel.read_text()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Narrator:
    """Turns tick reports into the demo's lines."""

    say: Say
    last: str = ""

    def __call__(self, report: TickReport) -> None:
        for o in report.outcomes:
            if o.status != OutcomeStatus.DONE or o.step.kind in SHOWN:
                where = o.step.cell or o.step.wave or ""
                self.say(f"    {o.status:<6} {o.step.kind:<19} {o.step.service:<7} "
                         f"{where:<16} {o.detail[:70]}")
        if report.plan is None:
            return
        line = "  ".join(f"{w.wave}:{w.state}" for w in report.plan.waves if w.service == "api")
        if line and line != self.last:
            self.say(f"  api waves: {line}")
            self.last = line


@dataclass
class DemoRun:
    """The running demo: the person's clone, the bare remote, the daemon and its ticks."""

    clone: Path
    remote: Path
    daemon: Daemon
    ticks: TickWatch
    exporter: TestExporter
    log_path: Path

    def merge(self, version: str, message: str) -> int:
        """Merge a pull request setting api to ``version``; returns the tick mark."""
        mark = self.ticks.mark()
        set_api(self.clone, version)
        git(self.clone, "commit", "-q", "-am", message)
        push(self.clone)
        self.daemon.trigger_fetch()  # as the forge's webhook would
        return mark

    def reverts(self) -> list[str]:
        """The reconciler's revert commits on the remote branch, newest first."""
        out = git(self.remote, "log", "main", "--grep=Reconciler-Rollback-Of",
                  "--format=%h %an: %s%x00")
        return [c.strip() for c in out.split("\0") if c.strip()]


@dataclass(frozen=True)
class DemoRecord:
    """What the demo saw, for the closing lines and for the tests."""

    outcomes: tuple[Outcome, ...]
    bad_outcomes: tuple[Outcome, ...]
    reverts: tuple[str, ...]
    revert_message: str
    release: str = field(default="")


def _config(remote: Path, work: Path, prometheus: str) -> DaemonConfig:
    return DaemonConfig(repo=RepoConfig(url=f"file://{remote}", branch="main"),
                        listen=f"127.0.0.1:{_free_port()}", state_dir=str(work / "state"),
                        prometheus_url=prometheus, poll_interval=5, reconcile_interval=2,
                        drift_interval=0, leader=LeaderConfig(kind="file"),
                        git_author=("reconciler", "reconciler@demo.local"))


@contextmanager
def _parts(example: Path, say: Say) -> Iterator[DemoRun]:
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
        clone, remote = work / "fleet", work / "fleet.git"
        _seed(example, clone, plane.kubeconfig, pg.port, pg.user)
        subprocess.run(["git", "clone", "-q", "--bare", str(clone), str(remote)], check=True)
        git(clone, "remote", "add", "origin", str(remote))
        log_file = Path(tempfile.mkstemp(prefix="reconciler-demo-", suffix=".log")[1])
        stream = stack.enter_context(log_file.open("a"))
        logs.setup("info", stream=stream)
        say(f"starting the daemon (reconciler run) on file://{remote}; its log: {log_file}")
        cfg = _config(remote, work, prom.url)
        daemon = build_daemon(cfg)
        ticks = TickWatch(Narrator(say))
        daemon.tick_listeners.append(ticks)
        daemon.parts.preload()
        stack.callback(daemon.shutdown)
        daemon.start()
        say(f"the daemon's dashboard, while the demo runs: http://{cfg.listen}/")
        yield DemoRun(clone, remote, daemon, ticks, exporter, log_file)


def _bad_version(run: DemoRun, say: Say) -> DemoRecord:
    mark = run.merge(BAD, f"api {BAD} everywhere")
    canary_applied = [ran(StepKind.KUBERNETES_APPLY, c) for c in CANARIES]
    run.ticks.wait(lambda r: any(applied(r) for applied in canary_applied), WAIT, mark)
    for cell in CANARIES:
        run.exporter.set_error_rate(cell, 0.4)
    run.ticks.wait(ran(StepKind.REVERT_COMMIT), WAIT, mark)
    for cell in CANARIES:
        run.exporter.set_error_rate(cell, 0.0)
    run.ticks.wait(settled, WAIT)
    bad = tuple(run.ticks.outcomes_since(mark))
    git(run.clone, "pull", "-q", "--rebase", "origin", "main")
    message = git(run.clone, "log", "-1", "--grep=Reconciler-Rollback-Of", "--format=%h %an: %B")
    return DemoRecord(tuple(run.ticks.outcomes), bad, tuple(run.reverts()), message,
                      (run.clone / "releases" / "api.yaml").read_text())


def _closing(record: DemoRecord, say: Say) -> None:
    say("\n   the revert commit the reconciler pushed:")
    for line in record.revert_message.splitlines():
        say(f"     {line}")
    applied_bad = sorted({o.step.cell or "" for o in record.bad_outcomes
                          if o.step.kind == StepKind.KUBERNETES_APPLY
                          and o.status == OutcomeStatus.DONE
                          and o.step.to_version == BAD})
    later = [c for c in applied_bad if c not in CANARIES]
    back = re.findall(r"version: (\S+)", record.release)
    say(f"\ndone: {BAD} reached {', '.join(applied_bad) or 'no cell'}; later waves "
        f"{'ran it: ' + ', '.join(later) if later else 'never ran it'}; "
        f"{len(record.reverts)} revert commit(s); Git says api {', '.join(sorted(set(back)))}. "
        "Cleaning up.")


def record_demo(example: Path, say: Say = print) -> DemoRecord:
    """Run the demo; what it saw."""
    if not (example / "reconciler.yaml").is_file():
        raise DemoUnavailable(f"{example} is not a fleet repository (no reconciler.yaml); "
                              "pass --example DIR")
    _check_parts()
    with _parts(example, say) as run:
        say("\n1. install: api 1.4.2 and worker 2.3.1 on 14 cells")
        run.ticks.wait(settled, WAIT, since=0)
        say("\n2. a pull request bumps api to 1.5.0 for every group; migration 0007 goes "
            "with it")
        mark = run.merge("1.5.0", "api 1.5.0 everywhere")
        run.ticks.wait(ran(StepKind.MIGRATION_CONTRACT), WAIT, mark)
        run.ticks.wait(settled, WAIT)
        say(f"\n3. a bad version: api {BAD}; the canary's error rate breaches its alarm")
        record = _bad_version(run, say)
        _closing(record, say)
    return record


def run_demo(example: Path, say: Say = print) -> int:
    """Run the demo; 0 on success."""
    logging.getLogger("reconciler").propagate = False
    record_demo(example, say)
    return 0
