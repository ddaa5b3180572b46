"""``reconciler run`` as a real process with ``verify: ssh``: the status commits it pushes
carry its own signature (``git verify-commit`` accepts them), they verify and cause no new
plan, and an unsigned commit authored with the daemon's email is refused with the reason
in status and logs — while what the daemon writes on top of it stays signed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.testing.gitserver import free_port
from tests.integration.signing.helpers import DAEMON, HUMAN, Keys, commit, git, git_verifies

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"


def _show(bare: Path, path: str) -> str:
    out = git(bare, "show", f"main:{path}", check=False)
    return out.stdout if out.returncode == 0 else ""


def _wait(proc: subprocess.Popen[bytes], log: Path, cond: Callable[[], bool], what: str,
          timeout: float = 60) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cond():
            return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def _ours_above(bare: Path, base: str) -> list[str]:
    return git(bare, "rev-list", f"{base}..main").stdout.split()


def test_run_pushes_signed_status_and_refuses_a_forged_daemon_commit(
        tmp_path: Path, keys: Keys) -> None:
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns(".git"))
    git(work, "init", "-q", "-b", "main")
    seed = commit(work, {}, "fleet, signed by a person", keys.human)
    bare = tmp_path / "fleet.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    git(work, "remote", "add", "origin", str(bare))
    (tmp_path / "webhook").write_text("w" * 32)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({
        "repo": {"url": str(bare), "branch": "main",
                 "verify": {"kind": "ssh", "allowed_signers": str(keys.allowed),
                            "signing_key": str(keys.daemon)}},
        "listen": f"127.0.0.1:{free_port()}", "state_dir": str(tmp_path / "state"),
        "webhook_secret_file": str(tmp_path / "webhook"), "poll_interval": "1s",
        "reconcile_interval": "1h",
        "git_author": {"name": DAEMON[0], "email": DAEMON[1]}}))
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                             str(cfg)], stderr=log.open("w"), stdout=subprocess.DEVNULL)
    try:
        _wait(proc, log, lambda: "valid: true" in _show(bare, "status/desired.yaml"),
              "the first status commit")
        ours = _ours_above(bare, seed)
        assert ours
        for sha in ours:
            assert f'Good "git" signature for {DAEMON[1]}' in git_verifies(
                bare, sha, keys.daemon_signers), sha
        time.sleep(2.5)  # a few polls: our own signed status causes no new plan
        assert _ours_above(bare, seed) == ours

        # the probe: an unsigned commit authored as the daemon, on the signed state
        git(work, "pull", "-q", "--rebase", "origin", "main", who=HUMAN)
        rel = work / "releases" / "api.yaml"
        forged = commit(work, {"releases/api.yaml": rel.read_text().replace(
            "version: 1.5.0", "version: 1.6.0", 1)},
            "Roll back api\n\nReconciler-Status: true\n", who=DAEMON)
        git(work, "push", "-q", "origin", "main")
        _wait(proc, log, lambda: "authorship is not identity" in
              _show(bare, "status/desired.yaml"), "the refusal in status")
        assert f"revision {forged[:12]} is not signed" in _show(bare, "status/desired.yaml")
        assert "refusing revision" in log.read_text()
        above = _ours_above(bare, forged)
        assert above  # status about the refusal, written on top of what it fetched
        for sha in above:
            assert f'Good "git" signature for {DAEMON[1]}' in git_verifies(
                bare, sha, keys.daemon_signers), sha
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0, log.read_text()[-3000:]
    assert "BEGIN OPENSSH PRIVATE KEY" not in log.read_text()
    assert os.stat(keys.daemon).st_mode & 0o077 == 0
