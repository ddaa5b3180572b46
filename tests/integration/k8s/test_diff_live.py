"""``reconciler diff --live`` against the real local control plane: each changed cell's
apply dry-run on the server (``dryRun=All``) — the server's own view of what changes,
what it would refuse, and nothing written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.kubernetes.apply import apply_service
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.core.loader import load_repository
from reconciler.core.preview import placeholder_outputs
from reconciler.core.render import default_context, render_service
from reconciler.localparts.k8s import ControlPlane
from tests.cli.test_cli import EXAMPLE, run
from tests.cli.test_diff import BUMP, git

pytestmark = pytest.mark.k8s
CELLS = ("euw1-canary-01", "euw1-canary-02")


def _repo(tmp_path: Path, plane: ControlPlane) -> Path:
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, repo)
    for f in (repo / "cells").glob("*.yaml"):
        f.write_text(re.sub(
            r"  kubernetes:\n    context: \S+\n    namespace: (\S+)\n",
            lambda m: (f"  kubernetes:\n    kubeconfig: {plane.kubeconfig}\n"
                       f"    context: {plane.context}\n    namespace: dl-{m[1]}\n"),
            f.read_text()))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the example fleet on the local control plane")
    return repo


def test_the_server_dry_run_shows_what_would_change(cluster_a: ControlPlane,
                                                    tmp_path: Path) -> None:
    repo = _repo(tmp_path, cluster_a)
    base = load_repository(DirectorySource(repo)).desired
    assert base is not None
    clients = ClientCache()
    applied = base.cells[CELLS[0]]
    kube = clients.for_cell(applied)
    objs = render_service(base, default_context(applied, "api", "1.5.0",
                                                placeholder_outputs(base, "api")))
    apply_service(kube, applied, "api", "1.5.0", objs)  # what the daemon did
    foreign = base.cells[CELLS[1]]  # someone else's ConfigMap where api-config would go
    ns = foreign.kubernetes.namespace
    kube.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api-config"},
        "data": {"owner": "someone else"}})

    (repo / "releases" / "api.yaml").write_text(BUMP)
    r = run("diff", str(repo), "--live", "--cell", *CELLS, "--now", "2026-11-22T10:00:00Z",
            "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2, r.stderr
    out = r.stdout
    first = out[out.index(f"on {CELLS[0]}"):out.index(f"on {CELLS[1]}")]
    server = first[first.index("the API server (dry-run) would change:"):]
    assert f"--- live/Deployment/dl-{CELLS[0]}/api" in server
    assert "-        image: registry.shop.example/api:1.5.0" in server
    assert "+        image: registry.shop.example/api:1.6.0" in server
    assert "-    reconciler.dev/version: 1.5.0" in server
    assert "resourceVersion" not in server and "managedFields" not in server
    second = out[out.index(f"on {CELLS[1]}"):]
    assert (f"! ConfigMap/dl-{CELLS[1]}/api-config: the apply would fail: already exists and "
            "reconciler did not create it (an apply never takes an object over)") in second
    assert f"+++ dry-run/Deployment/dl-{CELLS[1]}/api" in second  # a new object: all added

    live = kube.get(f"/apis/apps/v1/namespaces/dl-{CELLS[0]}/deployments/api")
    assert live is not None
    image = live["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":1.5.0"), "a dry-run wrote to the cluster"
    assert kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/api") is None

    markdown = run("diff", str(repo), "--live", "--cell", CELLS[0], "-o", "markdown",
                   "--state-dir", str(tmp_path / "state"))
    assert "The API server (server-side dry-run) would change:" in markdown.stdout
