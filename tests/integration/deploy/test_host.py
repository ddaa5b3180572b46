"""Running on a host: the systemd unit verifies, the notify protocol reaches a real
socket, the file lock keeps a second daemon out until the first dies, and the Dockerfile
only copies what exists and runs as non-root (no Docker engine runs here to build it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.adapters.fs.lock import FileLock
from reconciler.daemon import sdnotify

ROOT = Path(__file__).resolve().parents[3]


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing")
        pytest.skip("systemd-analyze is missing")
    unit = (ROOT / "systemd" / "reconciler.service").read_text()
    assert "ExecStart=/usr/local/bin/reconciler run --config" in unit
    for line in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "StateDirectory=reconciler", "WatchdogSec="):
        assert line in unit
    # the binary is not installed on this machine: point ExecStart at one that exists
    (tmp_path / "reconciler.service").write_text(
        unit.replace("/usr/local/bin/reconciler", "/bin/true"))
    out = subprocess.run([analyze, "verify", str(tmp_path / "reconciler.service")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, abstract: bool) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"reconciler-test-{os.getpid()}"
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    else:
        sock.bind(str(tmp_path / "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    sock.settimeout(2)
    try:
        assert sdnotify.ready() and sdnotify.status("reconciling\nnow") and sdnotify.watchdog()
        got = [sock.recv(256).decode() for _ in range(3)]
    finally:
        sock.close()
    assert got == ["READY=1", "STATUS=reconciling now", "WATCHDOG=1"]


def test_sd_notify_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert sdnotify.watchdog_interval() is None


HOLDER = """
import sys, time
from reconciler.adapters.fs.lock import FileLock
lock = FileLock(sys.argv[1])
print(lock.try_acquire(), flush=True)
time.sleep(60)
"""


def test_file_lock_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "leader.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        mine = FileLock(path)
        assert mine.try_acquire() is False
        assert mine.holder() == str(holder.pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 5
        while not mine.try_acquire():
            assert time.monotonic() < deadline, "lock not released by the kernel"
            time.sleep(0.05)
        assert mine.holder() == str(os.getpid())
        mine.release()
        assert mine.held is False
    finally:
        holder.kill()


def test_dockerfile() -> None:
    """The Dockerfile as written (tests/integration/image builds and runs it for real)."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "ARG BASE=python:3.11-slim"  # a registry's base unless told
    for ln in lines:
        if ln.startswith("COPY") and "--from=" not in ln:
            for src in ln.split()[1:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} missing"
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "reconciler"]' in lines
