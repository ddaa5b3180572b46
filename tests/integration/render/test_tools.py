"""The real `helm template` and `kubectl kustomize` behind the composition root: the example
fleet's chart (web) and Kustomize base (edge) rendered per cell, every refusal (a remote
base, `lookup`, an over-size render, a template error) as a clear ``file:line:col`` error,
and the incremental render cache (one cell's change renders one cell; a restart renders
nothing again)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.adapters import render as render_adapter
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.render import Limits, make_renderers
from reconciler.adapters.render.run import Refused, render_once
from reconciler.compose.oneshot import load_directory
from reconciler.core.loader import ParseCache, load_repository
from reconciler.core.render import default_context, render_service
from reconciler.core.toolrender import tool_request, tool_source
from reconciler.localparts.helm import find_helm, find_kubectl

EXAMPLE = Path(__file__).parents[3] / "example-repo"
SERVICES = Path(__file__).parents[3] / "examples" / "services"
RELEASE = """apiVersion: reconciler.dev/v1
kind: Release
metadata:
  name: {svc}
spec:
  service: {svc}
  versions:
    - groups: [canary, euw1-a, euw1-b, euw1-c, use1-a, use1-b, use1-c]
      version: {version}
"""


def _need_tools() -> None:
    missing = [n for n, p in (("helm (hack/helm.sh)", find_helm()),
                              ("kubectl (hack/k8s-testenv/build.sh)", find_kubectl()))
               if p is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"not available: {', '.join(missing)}")
        pytest.skip(f"not available: {', '.join(missing)}")


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example repository with the web chart and the edge base released everywhere."""
    _need_tools()
    monkeypatch.setenv("RECONCILER_RENDER_CACHE", str(tmp_path / "render-cache"))
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    for svc in ("web", "edge"):
        shutil.copytree(SERVICES / svc, repo / "services" / svc)
    (repo / "releases" / "web.yaml").write_text(RELEASE.format(svc="web", version="1.0.0"))
    (repo / "releases" / "edge.yaml").write_text(RELEASE.format(svc="edge", version="0.9.0"))
    return repo


def _renderer(tmp_path: Path, **limits: int):  # type: ignore[no-untyped-def]
    return make_renderers(find_helm(), find_kubectl(), tmp_path / "cache",
                          Limits(**limits) if limits else None)


def test_the_tools_versions_are_asked_once_per_cache(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The real binaries' versions, remembered: a second renderer on the same cache
    starts no process to ask them (the versions are part of every render key)."""
    _need_tools()
    first = _renderer(tmp_path).versions
    assert first["helm"].startswith("v3.") and "Kustomize" in first["kustomize"]
    asked: list[str] = []

    def tool_version(binary: Path | None, tool: str) -> str:
        asked.append(tool)
        return ""

    monkeypatch.setattr(render_adapter, "tool_version", tool_version)
    assert _renderer(tmp_path).versions == first and asked == []


def test_chart_and_base_render_per_cell(fleet: Path) -> None:
    result = load_directory(fleet)
    assert result.ok, result.errors
    desired = result.desired
    assert desired is not None
    cell = desired.cells["use1-b-02"]
    web = render_service(desired, default_context(cell, "web", "1.0.0"))
    by_kind = {o["kind"]: o for o in web}
    assert set(by_kind) == {"ConfigMap", "Deployment"}
    assert by_kind["ConfigMap"]["data"] == {"CELL": "use1-b-02", "REGION": "us-east-1",
                                            "GREETING": "Welcome to the shop"}
    deployment = by_kind["Deployment"]
    assert deployment["metadata"]["namespace"] == cell.kubernetes.namespace
    assert deployment["spec"]["replicas"] == 1  # values-shop.yaml over the chart's values
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.shop.example/web:1.0.0"
    edge = {o["kind"]: o for o in render_service(desired, default_context(cell, "edge",
                                                                          "0.9.0"))}
    assert edge["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.shop.example/edge:0.9.0"
    assert edge["Deployment"]["metadata"]["labels"]["reconciler.dev/cell"] == "use1-b-02"
    assert edge["Deployment"]["spec"]["selector"] == {"matchLabels": {"app": "edge"}}
    assert edge["ConfigMap"]["metadata"] == {
        "name": "edge-cell", "namespace": cell.kubernetes.namespace,
        "labels": {"reconciler.dev/cell": "use1-b-02", "reconciler.dev/service": "edge"}}
    assert edge["ConfigMap"]["data"]["cell.zone"] == "us-east-1b"
    assert edge["ConfigMap"]["data"]["version"] == "0.9.0"


def _validate(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", str(repo)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "NO_COLOR": "1"})


def test_remote_base_is_refused(fleet: Path) -> None:
    k = fleet / "services" / "edge" / "kustomize" / "kustomization.yaml"
    k.write_text(k.read_text() + "  - https://github.com/example/fleet//base?ref=v1\n")
    r = _validate(fleet)
    assert r.returncode == 1
    assert f"{k}:5:5: resources[1] 'https://github.com/example/fleet//base?ref=v1' is not " \
           "a file or directory inside the Kustomize directory (remote bases and resources " \
           "are refused" in r.stdout + r.stderr


def test_remote_resource_is_never_fetched_even_past_the_static_check(
        fleet: Path, tmp_path: Path) -> None:
    result = load_directory(fleet)
    assert result.desired is not None
    d = result.desired
    source = tool_source(d, d.services["edge"])
    files = tuple((rel, text + "  - github.com/kubernetes-sigs/kustomize/examples/"
                   "helloWorld?ref=v3.3.1\n" if rel == "kustomization.yaml" else text)
                  for rel, text in source.files)
    from dataclasses import replace
    request = tool_request(replace(source, files=files), "1.0.0",
                           default_context(d.cells["euw1-a-01"], "edge", "1.0.0").values())
    r = _renderer(tmp_path)
    start = time.monotonic()
    with pytest.raises(Refused) as e:
        render_once(request, r.binaries, Limits(timeout=60))
    assert time.monotonic() - start < 60
    assert str(e.value).startswith("services/edge/kustomize/kustomization.yaml:1:1: "
                                   "kustomize: "), e.value


def test_lookup_is_refused(fleet: Path) -> None:
    t = fleet / "services" / "web" / "chart" / "templates" / "configmap.yaml"
    t.write_text(t.read_text() + '  TOKEN: {{ (lookup "v1" "Secret" "kube-system" "t") }}\n')
    r = _validate(fleet)
    assert r.returncode == 1
    assert f"{t}:11:14: lookup is not allowed: a chart is rendered without cluster " \
           "access" in r.stdout + r.stderr


def test_render_over_the_size_limit_is_refused(fleet: Path, tmp_path: Path) -> None:
    (fleet / "services" / "web" / "chart" / "templates" / "many.yaml").write_text(
        "{{- range $i := until 2000 }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: many-{{ $i }}\ndata:\n  x: '{{ $i }} padding padding padding padding'\n"
        "{{- end }}\n")
    result = load_repository(DirectorySource(fleet), ParseCache(),
                             tools=_renderer(tmp_path, max_output=64 << 10))
    assert not result.ok
    web = [str(p) for p in result.errors if "web" in p.path]
    assert web == [f"services/web/chart/Chart.yaml:1:1: helm render: output over the limit "
                   f"of {64 << 10} bytes; killed (rendering for cell euw1-a-01 and 13 more)"]


def test_template_error_is_positioned_in_the_chart(fleet: Path) -> None:
    t = fleet / "services" / "web" / "chart" / "templates" / "deployment.yaml"
    t.write_text(t.read_text().replace("{{ .Values.replicas }}", "{{ .Values.nope.deeper }}"))
    r = _validate(fleet)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert f"{t}:8:22: helm template: template: web/templates/deployment.yaml:8:22: " \
           "executing" in out, out
    assert "(rendering for cell euw1-a-01 and 13 more)" in out


def test_kubernetes_schema_errors_of_rendered_objects(fleet: Path) -> None:
    d = fleet / "services" / "edge" / "kustomize" / "deployment.yaml"
    d.write_text(d.read_text().replace("replicas: 1", "replicas: one"))
    r = _validate(fleet)
    assert r.returncode == 1
    assert "spec.replicas: 'one' is not of type 'integer'" in r.stdout + r.stderr


def test_cache_renders_one_cell_after_a_one_cell_change_and_survives_restart(
        fleet: Path, tmp_path: Path) -> None:
    first = _renderer(tmp_path)
    cache = ParseCache()
    assert load_repository(DirectorySource(fleet), cache, tools=first).ok
    assert first.renders == 28  # 14 cells x (web, edge)
    assert load_repository(DirectorySource(fleet), cache, tools=first).ok
    assert first.renders == 28
    cell = fleet / "cells" / "use1-c-02.yaml"
    cell.write_text(cell.read_text().replace("replicas: 3", "replicas: 4"))
    assert load_repository(DirectorySource(fleet), cache, tools=first).ok
    assert first.renders == 30  # that cell's web and edge
    restarted = _renderer(tmp_path)  # a new process: the disk cache answers
    assert load_repository(DirectorySource(fleet), ParseCache(), tools=restarted).ok
    assert restarted.renders == 0


def test_diff_shows_a_chart_change_per_cell(fleet: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "x")):
        subprocess.run(["git", *args], cwd=fleet, check=True, capture_output=True, env=env)
    values = fleet / "services" / "web" / "values-shop.yaml"
    values.write_text(values.read_text().replace("Welcome to the shop", "Hello, shoppers"))
    r = subprocess.run([sys.executable, "-m", "reconciler.cli", "diff", str(fleet), "-o",
                        "json"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    changed = {(c["service"], c["cell"]) for c in doc["changes"]}
    assert changed == {("web", cell.stem) for cell in (fleet / "cells").glob("*.yaml")}
    assert "Hello, shoppers" in r.stdout
