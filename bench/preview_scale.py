"""Benchmark: `reconciler validate` and `reconciler diff` on a fleet of N cells x 3 services.

Usage: python bench/preview_scale.py [--cells 10000] [--repeat 5]

Writes the fleet of bench/plan_scale.py (a Deployment template per service, rendered
for every cell and checked against the Kubernetes API schema) into a Git repository in a
temporary directory, commits it on ``main``, and commits a one-group bump (the canary
group of ``api``, 1% of the cells) on ``bump``. Then runs, as a user would, each as its own
process: ``reconciler validate DIR`` and ``reconciler diff DIR --base main --head bump -o
markdown`` (both revisions read from Git, no checkout). Prints one JSON line: wall and
user+system CPU seconds (min / median) of each. Targets (issue #15): validate <= 5 s,
diff <= 3 s at 10,000 cells.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from plan_scale import repo  # noqa: E402

GIT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **GIT})


def fleet(where: Path, n: int) -> None:
    for path, data in repo(n).items():
        f = where / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    git(where, "init", "-q", "-b", "main")
    git(where, "add", "-A")
    git(where, "commit", "-qm", "the bench fleet")
    git(where, "checkout", "-qb", "bump")
    release = where / "releases" / "api.yaml"
    release.write_text(release.read_text().replace(
        "    - {groups: [canary, wave1, wave2, wave3], version: 2.0.0}",
        "    - {groups: [canary], version: 2.1.0}\n"
        "    - {groups: [wave1, wave2, wave3], version: 2.0.0}"))
    git(where, "commit", "-qam", "api 2.1.0 for the canary group")
    git(where, "checkout", "-q", "main")


def timed(args: list[str], ok: tuple[int, ...]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of the reconciler command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconciler.cli", *args],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode in ok, (args, done.returncode, done.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"min": round(xs[0], 2), "median": round(xs[len(xs) // 2], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        where = Path(tmp) / "fleet"
        fleet(where, args.cells)
        runs: dict[str, list[tuple[float, float]]] = {"validate": [], "diff": []}
        for _ in range(args.repeat):
            runs["validate"].append(timed(["validate", str(where)], (0,)))
            runs["diff"].append(timed(["diff", str(where), "--base", "main", "--head",
                                       "bump", "-o", "markdown"], (2,)))
    print(json.dumps({
        "cells": args.cells, "services": 3, "repeat": args.repeat,
        **{f"{k}_wall_s": stats([w for w, _ in v]) for k, v in runs.items()},
        **{f"{k}_cpu_s": stats([c for _, c in v]) for k, v in runs.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
