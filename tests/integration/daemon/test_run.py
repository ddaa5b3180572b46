"""``reconciler run`` as a real process against a Git remote over HTTP with basic auth:
webhook-triggered fetches, status commits pushed (and never re-planned), an invalid
commit rejected with file:line:col in status, SIGTERM, JSON logs without secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.testing.gitserver import GitServerUnavailable, HttpGitServer, git, seed_bare

pytestmark = pytest.mark.git
EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"
USER, PASSWORD = "reconciler-bot", "pa55-word-never-logged-7f3a"
SECRET = "webhook-secret-never-logged-91c2"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[HttpGitServer]:
    root = tmp_path / "srv"
    root.mkdir()
    seed_bare(root, "fleet.git", EXAMPLE)
    try:
        with HttpGitServer(root, USER, PASSWORD) as s:
            yield s
    except GitServerUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e))
        pytest.skip(str(e))


class Daemon:
    def __init__(self, tmp_path: Path, server: HttpGitServer) -> None:
        from reconciler.testing.gitserver import free_port

        self.port = free_port()
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "git").write_text(PASSWORD)
        (secrets / "webhook").write_text(SECRET)
        self.cfg = tmp_path / "config.yaml"
        self.cfg.write_text(json.dumps({
            "repo": {"url": server.url("fleet.git"), "branch": "main",
                     "auth": {"username": USER, "password_file": str(secrets / "git")}},
            "listen": f"127.0.0.1:{self.port}", "state_dir": str(tmp_path / "state"),
            "webhook_secret_file": str(secrets / "webhook"), "poll_interval": "1h",
            "reconcile_interval": "1h",
            "git_author": {"name": "reconciler", "email": "bot@example.test"}}))
        self.log = tmp_path / "daemon.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                                      str(self.cfg)], stderr=self.log.open("w"),
                                     stdout=subprocess.DEVNULL)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        req = urllib.request.Request(self.url("/webhook"), data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def push_event(self) -> int:
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return self.post(body, {"X-Hub-Signature-256": f"sha256={sig}",
                                "Content-Type": "application/json"})

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for(self, cond: object, what: str, timeout: float = 30) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if callable(cond) and cond():
                return time.monotonic() - start
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def _remote_status(root: Path, path: str) -> str | None:
    try:
        return git(root / "fleet.git", "show", f"main:{path}")
    except subprocess.CalledProcessError:
        return None


def _human_commit(root: Path, tmp_path: Path, edit: str, text: str) -> None:
    work = tmp_path / "human"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(root / "fleet.git"), str(work))
    git(work, "pull", "-q", "--rebase")
    (work / edit).write_text(text)
    git(work, "commit", "-qam", f"edit {edit}")
    git(work, "push", "-q", "origin", "main")


def test_daemon_over_http(tmp_path: Path, server: HttpGitServer) -> None:
    root = server.root
    d = Daemon(tmp_path, server)
    try:
        d.wait_for(lambda: _remote_status(root, "status/desired.yaml") is not None,
                   "the first status commit")
        assert "valid: true" in (_remote_status(root, "status/desired.yaml") or "")
        assert d.get("/healthz") == (200, "ok\n")
        code, _ = d.get("/readyz")  # no cluster behind the example's contexts: not ready
        assert code == 503
        commits = git(root / "fleet.git", "rev-list", "--count", "main")

        # own status commits do not cause new plans: nothing more is committed
        time.sleep(1.5)
        assert git(root / "fleet.git", "rev-list", "--count", "main") == commits

        # bad signatures are refused the same way, oversized bodies too
        assert d.post(b"{}", {"X-Hub-Signature-256": "sha256=00"}) == 401
        assert d.post(b"{}", {}) == 401
        assert d.post(b"x" * (2 << 20), {"X-Hub-Signature-256": "sha256=00"}) == 413

        # an invalid commit: rejected with file:line:col, the last good revision stays
        release = (EXAMPLE / "releases" / "api.yaml").read_text()
        _human_commit(root, tmp_path, "releases/api.yaml",
                      release.replace("version: 1.5.0", "version: not-a-version", 1))
        assert d.push_event() == 202
        d.wait_for(lambda: "valid: false" in (_remote_status(root, "status/desired.yaml")
                                              or ""), "the rejection in status", timeout=10)
        desired = _remote_status(root, "status/desired.yaml") or ""
        assert "releases/api.yaml:" in desired and "lastGoodRevision" in desired

        # a valid commit, through the webhook: fetched within a second
        _human_commit(root, tmp_path, "releases/api.yaml", release)
        head = git(root / "fleet.git", "rev-parse", "main")
        assert d.push_event() == 202
        took = d.wait_for(lambda: any(ln.get("revision") == head and "new desired" in
                                      str(ln.get("message")) for ln in d.lines()),
                          "the fetch after the webhook", timeout=5)
        assert took < 1.0
        d.wait_for(lambda: "valid: true" in (_remote_status(root, "status/desired.yaml")
                                             or ""), "valid again", timeout=10)
        code, metrics = d.get("/metrics")
        assert code == 200 and "reconciler_reconcile_duration_seconds_count" in metrics
        assert 'reconciler_webhook_requests_total{result="unauthorized"} 2.0' in metrics
    finally:
        rc = d.stop()
    assert rc == 0
    lines = d.lines()
    assert any(ln.get("message") == "stopped" for ln in lines)
    assert all({"time", "level", "message"} <= set(ln) for ln in lines)
    everything = d.log.read_text() + "".join(
        git(root / "fleet.git", "show", f"main:{p}") for p in
        git(root / "fleet.git", "ls-tree", "-r", "--name-only", "main", "status").splitlines())
    everything += git(root / "fleet.git", "log", "-p", "main")
    assert PASSWORD not in everything and SECRET not in everything
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
