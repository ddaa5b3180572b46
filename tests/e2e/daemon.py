"""The e2e fleet behind a real Git remote (git-http-backend with basic auth), followed by
a real ``reconciler run`` process that can be killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from reconciler.testing.gitserver import HttpGitServer, free_port, git, seed_bare
from tests.e2e.conftest import CELLS, SECRET_ENV, Fleet, bump_release

USER, PASSWORD = "e2e-bot", "e2e-git-password-do-not-log"
BOT_EMAIL = "reconciler@e2e.example"


class RemoteFleet:
    """A bare repository seeded from the fleet, served over HTTP, and a human clone."""

    def __init__(self, fleet: Fleet, tmp: Path) -> None:
        self.fleet, self.tmp = fleet, tmp
        (tmp / "srv").mkdir()
        self.bare = seed_bare(tmp / "srv", "fleet.git", fleet.repo)
        self.server = HttpGitServer(tmp / "srv", USER, PASSWORD).start()
        self.port = self.server.port
        self.human = tmp / "human"
        git(tmp, "clone", "-q", str(self.bare), str(self.human))

    def push_version(self, version: str, canary_bake: str | None = None) -> None:
        """Push a bump of every group to ``version`` (and a new canary bake time, so an
        alarm has time to fire before the canary is baked)."""
        git(self.human, "pull", "-q", "--rebase")
        bump_release(self.human, version, canary_bake)
        git(self.human, "commit", "-qam", f"bump shop to {version}")
        self.push()

    def push(self) -> None:
        """Push the human clone, rebasing over the daemon's status commits as people do."""
        for attempt in range(10):
            try:
                git(self.human, "push", "-q", "origin", "main")
                return
            except subprocess.CalledProcessError:
                if attempt == 9:
                    raise
                git(self.human, "pull", "-q", "--rebase")

    def show(self, path: str) -> str:
        try:
            return git(self.bare, "show", f"main:{path}")
        except subprocess.CalledProcessError:
            return ""

    def rollout(self) -> dict[str, dict[str, object]]:
        """The shop rollout's waves in the pushed status."""
        doc = yaml.safe_load(self.show("status/rollouts/shop.yaml") or "{}") or {}
        waves: dict[str, dict[str, object]] = doc.get("waves") or {}
        return waves

    def cells_at(self, version: str) -> bool:
        """Every cell on ``version`` and Healthy in the pushed status."""
        for cell in CELLS:
            doc = yaml.safe_load(self.show(f"status/cells/{cell}.yaml") or "{}") or {}
            shop = (doc.get("services") or {}).get("shop") or {}
            if shop.get("version") != version or shop.get("health") != "Healthy":
                return False
        return True

    def waves_done(self) -> bool:
        waves = self.rollout()
        return bool(waves) and all(w.get("state") == "done" for w in waves.values())

    def human_history(self) -> list[str]:
        """Subjects of every commit that is not a status-only commit of the daemon."""
        out = []
        for sha in git(self.bare, "rev-list", "main").splitlines():
            subject = git(self.bare, "log", "-1", "--format=%s", sha)
            email = git(self.bare, "log", "-1", "--format=%ae", sha)
            files = git(self.bare, "show", "--format=", "--name-only", sha).splitlines()
            if email == BOT_EMAIL and files and all(f.startswith("status/") for f in files):
                continue
            out.append(subject)
        return out

    def stop(self) -> None:
        self.server.stop()

    def restart_server(self) -> None:
        """Serve again on the same port (after an outage made with ``stop``)."""
        port = self.server.port if self.server._server else self.port
        self.server = HttpGitServer(self.tmp / "srv", USER, PASSWORD, port=port).start()


class DaemonProcess:
    """``reconciler run`` over the remote; ``kill9`` and ``start`` again at will."""

    def __init__(self, remote: RemoteFleet, state: Path, name: str = "daemon",
                 extra: dict[str, object] | None = None) -> None:
        self.remote = remote
        secrets = remote.tmp / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / "git").write_text(PASSWORD)
        self.port = free_port()
        self.name = name
        self.cfg = remote.tmp / f"{name}.yaml"
        self.cfg.write_text(json.dumps({
            "repo": {"url": remote.server.url("fleet.git"),
                     "auth": {"username": USER, "password_file": str(secrets / "git")}},
            "listen": f"127.0.0.1:{self.port}", "state_dir": str(state),
            "prometheus_url": remote.fleet.prom.url, "poll_interval": "1s",
            "reconcile_interval": "1s", "leader": {"kind": "file"},
            "terraform_cli_config": str(remote.fleet.terraform_cli_config),
            "git_author": {"name": "reconciler", "email": BOT_EMAIL}, **(extra or {})}))
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.remote.tmp / f"{self.name}-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**os.environ, SECRET_ENV: self.remote.fleet.pg.password}
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run",
                                      "--config", str(self.cfg)], env=env,
                                     stderr=log.open("w"), stdout=subprocess.DEVNULL)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def text(self) -> str:
        return "".join(p.read_text() for p in self.logs if p.exists())

    def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            assert self.proc is not None and self.proc.poll() is None, self.text()[-4000:]
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.text()[-4000:]}")
