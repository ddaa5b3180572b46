"""`reconciler snapshot REPO -o json` against the real local control plane."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.core.loader import load_repository
from reconciler.core.render import default_context, render_service
from reconciler.core.schema import validate_json
from reconciler.localparts.k8s import ControlPlane

from .support import wait_for

pytestmark = pytest.mark.k8s
BASE = Path(__file__).resolve().parents[2] / "core" / "fixtures" / "base"


def _repo(tmp_path: Path, plane: ControlPlane) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(BASE, repo)
    for f in (repo / "cells").glob("*.yaml"):
        text = re.sub(r"  kubernetes:\n    namespace: (\S+)\n",
                      lambda m: (f"  kubernetes:\n    namespace: snap-{m[1]}\n"
                                 f"    kubeconfig: {plane.kubeconfig}\n"
                                 f"    context: {plane.context}\n"), f.read_text())
        f.write_text(text)
    return repo


def test_snapshot_cli_reports_what_runs(cluster_a: ControlPlane, tmp_path: Path) -> None:
    repo = _repo(tmp_path, cluster_a)
    desired = load_repository(DirectorySource(repo)).desired
    assert desired is not None
    c1 = desired.cells["c1"]
    kube = ClientCache().for_cell(c1)
    objs = render_service(desired, default_context(c1, "app", "1.1.0"))
    apply_service(kube, c1, "app", "1.1.0", objs)

    def snapshot() -> dict[str, object] | None:
        r = subprocess.run([sys.executable, "-m", "reconciler.cli", "snapshot", str(repo),
                            "-o", "json"], capture_output=True, text=True, timeout=120,
                           check=False)
        assert r.returncode == 0, r.stderr
        doc: dict[str, object] = json.loads(r.stdout)
        app = doc["cells"]["c1"]["services"]["app"]  # type: ignore[index]
        return doc if app["health"] == "Healthy" else None

    doc = wait_for("c1 healthy in the snapshot", snapshot, timeout=90)
    assert validate_json(doc, "live") == []
    cells = doc["cells"]
    assert cells["c1"]["services"]["app"]["version"] == "1.1.0"  # type: ignore[index]
    assert cells["z1"]["services"]["app"]["health"] == "Missing"  # type: ignore[index]
    assert cells["z1"]["services"]["app"]["version"] is None  # type: ignore[index]
