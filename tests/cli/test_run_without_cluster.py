"""``reconciler run`` with no cluster reachable (issue #15): ``/readyz`` says not ready
with the reason, the reason names the kubeconfig actually used (``KUBECONFIG``
honoured), and the tick's log line says the live state could not be read — never a
quiet "tick done … 0 errors"."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from reconciler.testing.gitserver import free_port
from tests.cli.test_cli import EXAMPLE, env


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def test_readyz_is_not_ready_and_names_the_kubeconfig(tmp_path: Path) -> None:
    repo = tmp_path / "fleet"  # a plain directory: watched, no Git remote needed
    shutil.copytree(EXAMPLE, repo)
    missing = tmp_path / "no-such-kubeconfig"
    port = free_port()
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run", "--repo", str(repo),
             "--state-dir", str(tmp_path / "state"), "--listen", f"127.0.0.1:{port}",
             "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, text=True,
            env=env(KUBECONFIG=str(missing), RECONCILER_WEBHOOK_SECRET=""))
    try:
        deadline, answer = time.monotonic() + 90, (0, "")
        while time.monotonic() < deadline:
            answer = _readyz(port)
            if "backends not answering" in answer[1] and "tick done" in log.read_text():
                break
            time.sleep(0.3)
        code, body = answer
        assert code == 503, (code, body, log.read_text()[-3000:])
        assert f"kubeconfig {missing} (from $KUBECONFIG)" in body
        ticks = [json.loads(line) for line in log.read_text().splitlines()
                 if line.startswith("{") and "tick done" in line]
        assert ticks, log.read_text()[-3000:]
        assert "not planned, live state unreadable: " in ticks[-1]["message"]
        assert ticks[-1]["level"] in ("warning", "WARNING")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
