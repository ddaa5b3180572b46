"""Benchmark: `reconciler validate` of N cells whose service is a Helm chart or a Kustomize
base, cold and after a one-cell change.

Usage: python bench/render_scale.py [--cells 10000] [--tool helm|kustomize] [--repeat 3]

Writes a fleet of N cells (4 groups, one wave each) with one service, ``web``: the
example Helm chart examples/services/web (``--tool helm``) or the example Kustomize base
examples/services/edge written as ``web`` (``--tool kustomize``), released to every
group. Each cell has its own inputs (name, namespace, zone, a ``replicas`` variable), so
every cell is one render. Then, each
as its own process, as a user would run it:

- cold: ``reconciler validate DIR`` with an empty render cache (every cell rendered by
  the real tool, in parallel on every core);
- one-cell change: one cell's ``replicas`` changed, ``reconciler validate DIR`` again
  (the disk cache answers every other cell; ``--repeat`` times, a different cell each);
- in-process (the daemon's path): one ``load_repository`` with the warm caches after
  another one-cell change.

Prints one JSON line: seconds (wall; CPU — user + system — of the command and what it
waited for, which leaves out the tools' processes inside bubblewrap; and the CPU seconds
the whole machine was busy during the run, all of the cost when the machine is
otherwise quiet), cells rendered, and the 1-minute load average before and after. Each
`validate` has its own parse cache (``RECONCILER_PARSE_CACHE``) and render cache in the
bench directory: empty for the cold run, as the runs before left them after. Many cells
render per tool process (adapters/render/batch.py) when ``helm-batch`` is built
(hack/helm.sh).
Targets (issue #21): cold <= 60 s, after a one-cell change <= 2 s at 10,000 cells.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.adapters.fs.source import DirectorySource  # noqa: E402
from reconciler.compose.tools import manifest_tools  # noqa: E402
from reconciler.core.loader import ParseCache, load_repository  # noqa: E402

GROUPS = ("canary", "wave1", "wave2", "wave3")
EXAMPLE = ROOT / "examples" / "services"


def _fleet_yaml() -> str:
    waves = "\n".join(f"    - {{name: {g}, groups: [{g}], bake: 10m, maxUnavailable: 10%}}"
                      for g in GROUPS)
    return (f"apiVersion: reconciler.dev/v1\nkind: Fleet\nmetadata: {{name: bench}}\nspec:\n"
            f"  waves:\n{waves}\n")


def _cell_yaml(i: int, group: str, replicas: int) -> str:
    return (f"apiVersion: reconciler.dev/v1\nkind: Cell\nmetadata: {{name: cell-{i:05d}}}\n"
            f"spec:\n  group: {group}\n  region: r{i % 4}\n  zone: r{i % 4}{'abc'[i % 3]}\n"
            f"  weight: 1\n  kubernetes: {{namespace: cell-{i:05d}}}\n"
            f"  terraform: {{vars: {{replicas: {replicas}}}}}\n")


def write_fleet(where: Path, n: int, tool: str) -> None:
    (where / "cells").mkdir(parents=True)
    (where / "reconciler.yaml").write_text(_fleet_yaml())
    for i in range(n):
        group = "canary" if i < max(1, n // 100) else GROUPS[1 + i % 3]
        (where / "cells" / f"cell-{i:05d}.yaml").write_text(_cell_yaml(i, group, 1 + i % 3))
    svc = where / "services" / "web"
    if tool == "helm":
        shutil.copytree(EXAMPLE / "web", svc)
    else:
        shutil.copytree(EXAMPLE / "edge", svc)
        text = (svc / "service.yaml").read_text().replace("name: edge", "name: web")
        (svc / "service.yaml").write_text(text)
    (where / "releases").mkdir()
    (where / "releases" / "web.yaml").write_text(
        "apiVersion: reconciler.dev/v1\nkind: Release\nmetadata: {name: web}\nspec:\n"
        f"  service: web\n  versions:\n    - {{groups: [{', '.join(GROUPS)}], "
        "version: 1.0.0}\n")


def change_one_cell(where: Path, i: int) -> None:
    f = where / "cells" / f"cell-{i:05d}.yaml"
    f.write_text(f.read_text().replace("replicas: ", "replicas: 9"))


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (every core; /proc/stat), or 0."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def validate(where: Path, cache: Path) -> tuple[float, float, float]:
    """Wall seconds of one run; CPU seconds (user + system) of it and the processes it
    waited for; CPU seconds the whole machine was busy meanwhile. The tools run in
    bubblewrap, whose sandboxed process is not a waited-for child of `validate`, so
    the first CPU figure leaves the tools out; on a quiet machine the second one is
    the whole cost."""
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy()
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", str(where)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "RECONCILER_RENDER_CACHE": str(cache),
                               "RECONCILER_PARSE_CACHE": str(cache.parent / "parse-cache")})
    wall = time.perf_counter() - t
    after, busy = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy() - busy
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), busy


def in_process(where: Path, cache: Path, n: int) -> tuple[float, int]:
    """The daemon's path: a warm load, then one after a one-cell change."""
    os.environ["RECONCILER_RENDER_CACHE"] = str(cache)
    tools = manifest_tools()
    parse = ParseCache()
    assert load_repository(DirectorySource(where), parse, tools=tools).ok
    before = tools.get().renders
    change_one_cell(where, n - 1)
    t = time.perf_counter()
    result = load_repository(DirectorySource(where), parse, tools=tools)
    wall = time.perf_counter() - t
    assert result.ok, result.errors[:3]
    return wall, tools.get().renders - before


def count_files(cache: Path) -> int:
    return sum(1 for _ in cache.glob("*/*.yaml"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--tool", choices=("helm", "kustomize"), default="helm")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="reconciler-render-bench-") as tmp:
        where, cache = Path(tmp) / "repo", Path(tmp) / "render-cache"
        write_fleet(where, args.cells, args.tool)
        cold, cold_cpu, cold_busy = validate(where, cache)
        rendered_cold = count_files(cache)
        changed, rendered = [], []
        for k in range(args.repeat):
            change_one_cell(where, 1 + k)
            before = count_files(cache)
            changed.append(validate(where, cache))
            rendered.append(count_files(cache) - before)
        daemon, renders = in_process(where, cache, args.cells)
        print(json.dumps({
            "cells": args.cells, "tool": args.tool, "cpus": os.cpu_count(),
            "validate_cold_s": round(cold, 2), "validate_cold_cpu_s": round(cold_cpu, 2),
            "validate_cold_machine_busy_s": round(cold_busy, 2),
            "renders_cold": rendered_cold,
            "validate_one_cell_change_s": [round(x, 2) for x, _, _ in changed],
            "validate_one_cell_change_cpu_s": [round(c, 2) for _, c, _ in changed],
            "validate_one_cell_change_machine_busy_s": [round(b, 2) for _, _, b in changed],
            "validate_one_cell_change_renders": rendered,
            "in_process_reload_one_cell_s": round(daemon, 3),
            "in_process_renders": renders,
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))


if __name__ == "__main__":
    main()
