"""Benchmarks of the daemon's Git side (docs/benchmarks.md).

1. commit → webhook → fetched (log line "new desired revision") → tick done (loaded,
   validated, snapshot attempted, status committed), through a real ``reconciler run``
   process and a real git-http-backend over HTTP with basic auth;
2. CPU time of one idle poll (fetch of an unchanged remote) in this process.

Usage: python bench/git_daemon.py [--rounds 10] [--polls 50]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from reconciler.compose.sources import open_source
from reconciler.daemon.config import DaemonConfig, RepoConfig
from reconciler.testing.gitserver import HttpGitServer, free_port, git, seed_bare

EXAMPLE = Path(__file__).resolve().parents[1] / "example-repo"
USER, PASSWORD, SECRET = "bot", "bench-password", "bench-webhook-secret"


def _lines(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _wait(log: Path, revision: str, needle: str, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(ln.get("revision") == revision and needle in str(ln.get("message"))
               for ln in _lines(log)):
            return time.monotonic()
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {needle!r} at {revision[:12]}")


def _post(port: int) -> None:
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=body, method="POST",
                                 headers={"X-Hub-Signature-256": f"sha256={sig}"})
    urllib.request.urlopen(req, timeout=5).read()


def webhook_latency(tmp: Path, server: HttpGitServer, rounds: int) -> dict[str, float]:
    port = free_port()
    (tmp / "pw").write_text(PASSWORD)
    (tmp / "hook").write_text(SECRET)
    cfg = tmp / "config.yaml"
    cfg.write_text(json.dumps({
        "repo": {"url": server.url("fleet.git"), "auth": {"username": USER,
                                                          "password_file": str(tmp / "pw")}},
        "listen": f"127.0.0.1:{port}", "state_dir": str(tmp / "state"),
        "webhook_secret_file": str(tmp / "hook"), "poll_interval": "1h",
        "reconcile_interval": "1h", "git_author": {"name": "r", "email": "r@bench"}}))
    log = tmp / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                             str(cfg)], stderr=log.open("w"), stdout=subprocess.DEVNULL)
    work = tmp / "human"
    fetched, ticked = [], []
    try:
        time.sleep(3)
        git(tmp, "clone", "-q", str(server.root / "fleet.git"), str(work))
        for i in range(rounds):
            git(work, "pull", "-q", "--rebase")
            f = work / "releases" / "api.yaml"
            f.write_text(f.read_text() + f"# bench {i}\n")
            git(work, "commit", "-qam", f"bench {i}")
            git(work, "push", "-q", "origin", "main")
            head = git(work, "rev-parse", "HEAD")
            t0 = time.monotonic()
            _post(port)
            fetched.append(_wait(log, head, "new desired revision") - t0)
            ticked.append(_wait(log, head, "tick done") - t0)
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"fetched_median": statistics.median(fetched), "fetched_max": max(fetched),
            "tick_median": statistics.median(ticked), "tick_max": max(ticked)}


def idle_poll_cpu(tmp: Path, server: HttpGitServer, polls: int) -> dict[str, float]:
    """The daemon's fetch job on an unchanged remote: the source ``compose`` builds for
    ``reconciler run`` (fetch into the bare cache, then adopt: nothing new)."""
    (tmp / "pw2").write_text(PASSWORD)
    cfg = DaemonConfig(repo=RepoConfig(url=server.url("fleet.git"), username=USER,
                                       password_file=str(tmp / "pw2")),
                       state_dir=str(tmp / "idle-state"))
    source = open_source(cfg)
    cpu, wall = [], []
    for _ in range(polls):
        c0, w0 = time.process_time(), time.monotonic()
        source.sync()
        cpu.append(time.process_time() - c0)
        wall.append(time.monotonic() - w0)
    return {"cpu_median_ms": statistics.median(cpu) * 1000, "cpu_max_ms": max(cpu) * 1000,
            "wall_median_ms": statistics.median(wall) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--polls", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "srv").mkdir()
        seed_bare(tmp / "srv", "fleet.git", EXAMPLE)
        with HttpGitServer(tmp / "srv", USER, PASSWORD) as server:
            poll = idle_poll_cpu(tmp, server, args.polls)
            hook = webhook_latency(tmp, server, args.rounds)
    print(json.dumps({"idle_poll": poll, "webhook": hook}, indent=2))


if __name__ == "__main__":
    main()
