"""Many cells per tool process (adapters/render/batch.py) on the real tools: every cell's
output of a batch is byte for byte what rendering that cell alone gives (`helm template`,
`kubectl kustomize` of its overlay), for charts and bases that use what could tell the
two apart (chart name, release, capabilities, hooks, a subchart enabled per cell, a
per-cell failure; name prefixes, generators, patches); a cell failing, over the output
limit or over the time limit in a batch is that cell's problem only, named as a single
render names it; a batch that fails as a whole falls back to rendering cell by cell."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.render import Limits, make_renderers
from reconciler.adapters.render.batch import cut, render_batch
from reconciler.adapters.render.renderer import ToolRenderers
from reconciler.adapters.render.run import Refused, render_once
from reconciler.core.toolrender import ToolRequest, ToolSource, image_names, tool_request
from reconciler.localparts.helm import (
    find_helm,
    find_helm_batch,
    find_kubectl,
    find_kustomize_batch,
)

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.2.3\nappVersion: '9'\n"
                  "dependencies:\n  - name: extra\n    version: 0.1.0\n"
                  "    condition: reconciler.vars.extra\n",
    "values.yaml": "image: {repository: registry.local/shop, tag: latest}\nsize: 1\n",
    "templates/NOTES.txt": "thanks for {{ .Release.Name }}\n",
    "templates/_helpers.tpl": '{{- define "shop.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}'
                              '{{- end -}}\n',
    "templates/app.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "shop.name" . }}
  labels: {chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"}
data:
  cell: {{ required "reconciler.cell.name is required" .Values.reconciler.cell.name | quote }}
  ns: {{ .Release.Namespace }}
  kube: {{ .Capabilities.KubeVersion.Version }}
  helm: {{ .Capabilities.HelmVersion.Version }}
  install: "{{ .Release.IsInstall }}"
  tpl: {{ tpl "{{ .Values.image.tag }}" . | quote }}
  files: {{ .Files.Get "extra.txt" | quote }}
  {{- if eq .Values.reconciler.vars.fail "yes" }}
  broken: {{ fail "this cell is broken" }}
  {{- end }}
  {{- if .Values.reconciler.vars.big }}
  big: {{ repeat 9000 "x" | quote }}
  {{- end }}
  {{- if .Values.reconciler.vars.slow }}
  {{- range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}
  {{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: {{ .Values.size }}
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: shop, image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"}]
""",
    "templates/hook.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: pre-install
  annotations: {"helm.sh/hook": pre-install}
data: {cell: {{ .Values.reconciler.cell.name | quote }}}
---
apiVersion: v1
kind: Pod
metadata:
  name: a-test
  annotations: {"helm.sh/hook": test}
spec: {containers: [{name: t, image: busybox}]}
""",
    "extra.txt": "a file of the chart\n",
    "charts/extra/Chart.yaml": "apiVersion: v2\nname: extra\nversion: 0.1.0\n",
    "charts/extra/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                      "  name: extra-{{ .Chart.Name }}\n"
                                      "data: {global: {{ .Values.global | toJson | quote }}}\n",
}
BASE = {
    "kustomization.yaml": """\
namePrefix: shop-
resources: [deployment.yaml, service.yaml]
configMapGenerator:
  - name: settings
    literals: [colour=blue]
patches:
  - target: {kind: Deployment}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env
        value: [{name: X, value: "1"}]
""",
    "deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers:
        - name: shop
          image: registry.local/shop:0.0.0
          envFrom: [{configMapRef: {name: settings}}]
""",
    "service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: app}\n"
                    "spec: {selector: {app: shop}, ports: [{port: 80}]}\n",
}


def _need(*tools: tuple[str, Path | None]) -> None:
    missing = [name for name, path in tools if path is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"not available: {', '.join(missing)}")
        pytest.skip(f"not available: {', '.join(missing)}")


@pytest.fixture
def renderer(tmp_path: Path) -> ToolRenderers:
    _need(("helm (hack/helm.sh)", find_helm()),
          ("helm-batch (hack/helm.sh)", find_helm_batch()),
          ("kubectl (hack/k8s-testenv/build.sh)", find_kubectl()))
    r = make_renderers(find_helm(), find_kubectl(), None, Limits(timeout=20, max_output=8192),
                       helm_batch=find_helm_batch())
    assert r.binaries.helm_batch is not None, "helm-batch is not built from helm's version"
    return r


@pytest.fixture(params=["kubectl", "kustomize-batch"])
def kustomizer(request: pytest.FixtureRequest, tmp_path: Path) -> ToolRenderers:
    """The renderer with Kustomize batches by one generated kustomization run by `kubectl
    kustomize` (no kustomize-batch), or by `kustomize-batch`."""
    framed = request.param == "kustomize-batch"
    _need(("helm (hack/helm.sh)", find_helm()),
          ("helm-batch (hack/helm.sh)", find_helm_batch()),
          ("kubectl (hack/k8s-testenv/build.sh)", find_kubectl()),
          ("kustomize-batch (hack/helm.sh)", find_kustomize_batch() if framed else Path()))
    r = make_renderers(find_helm(), find_kubectl(), None, Limits(timeout=20, max_output=8192),
                       helm_batch=find_helm_batch(),
                       kustomize_batch=find_kustomize_batch() if framed else None)
    assert (r.binaries.kustomize_batch is not None) == framed, \
        "kustomize-batch is not built from the Kustomize kubectl embeds"
    return r


def _source(tool: str, files: dict[str, str], values: tuple[tuple[str, str], ...] = ()
            ) -> ToolSource:
    root = "services/shop/" + ("chart" if tool == "helm" else "kustomize")
    digest = hashlib.sha256(repr((tool, files, values)).encode()).hexdigest()
    return ToolSource(tool, "shop", root, tuple(sorted(files.items())), values, "shop", digest)


def _requests(source: ToolSource, cells: int, **vars_: dict[int, Any]) -> list[ToolRequest]:
    out = []
    for i in range(cells):
        values: dict[str, Any] = {
            "version": f"1.{i}.0", "service.name": "shop", "cell.name": f"cell-{i}",
            "cell.group": "g", "cell.region": "r", "cell.zone": "z",
            "cell.namespace": f"ns-{i}", "terraform.queue": f"q{i}", "vars.extra": i % 2 == 0,
            "vars.fail": "no", "vars.big": False, "vars.slow": False}
        for name, by_cell in vars_.items():
            if i in by_cell:
                values[f"vars.{name}"] = by_cell[i]
        out.append(tool_request(source, f"1.{i}.0", values,
                                image_names(source) if source.tool == "kustomize" else None))
    return out


def _alone(r: ToolRequest, renderer: ToolRenderers) -> str | tuple[Any, ...]:
    try:
        return render_once(r, renderer.binaries, renderer.limits)
    except Refused as e:
        return e.problems


def test_a_helm_batch_renders_each_cell_as_helm_template_does(
        renderer: ToolRenderers) -> None:
    source = _source("helm", CHART, (("services/shop/values.yaml", "size: 2\n"),))
    requests = _requests(source, 5, fail={3: "yes"}, big={4: True})
    batch = render_batch(requests, renderer.binaries, renderer.limits)
    alone = [_alone(r, renderer) for r in requests]
    assert batch == alone
    assert isinstance(batch[0], str) and "name: extra-extra" in batch[0]  # subchart on
    assert isinstance(batch[1], str) and "extra-extra" not in batch[1]  # ... and off
    assert "# Source: shop/templates/hook.yaml" in batch[0] and "a-test" not in batch[0]
    assert [str(p) for p in batch[3]] == [  # type: ignore[union-attr]
        "services/shop/chart/templates/app.yaml:15:13: helm template: execution error at "
        "(shop/templates/app.yaml:15:13): this cell is broken"]
    assert [str(p) for p in batch[4]] == [  # type: ignore[union-attr]
        "services/shop/chart/Chart.yaml:1:1: helm render: output over the limit of 8192 "
        "bytes; killed"]


def test_a_cell_over_the_time_limit_is_that_cells_problem(renderer: ToolRenderers) -> None:
    source = _source("helm", CHART)
    requests = _requests(source, 4, slow={1: True})
    limits = Limits(timeout=2, max_output=8192)
    batch = render_batch(requests, renderer.binaries, limits)
    assert [type(b).__name__ for b in batch] == ["str", "tuple", "str", "str"]
    assert [str(p) for p in batch[1]] == [  # type: ignore[union-attr]
        "services/shop/chart/Chart.yaml:1:1: helm render: no result after 2 s; killed"]
    assert batch[2] == _alone(requests[2], renderer)


def test_a_kustomize_batch_renders_each_cell_as_its_overlay_does(
        kustomizer: ToolRenderers) -> None:
    requests = _requests(_source("kustomize", BASE), 4)
    batch = render_batch(requests, kustomizer.binaries, kustomizer.limits)
    assert batch == [_alone(r, kustomizer) for r in requests]
    assert isinstance(batch[2], str) and "namespace: ns-2" in batch[2] \
        and "registry.local/shop:1.2.0" in batch[2] and "name: shop-settings-" in batch[2]


def test_a_kustomize_cell_over_the_output_limit_is_that_cells_problem(
        kustomizer: ToolRenderers) -> None:
    requests = _requests(_source("kustomize", BASE), 3, big={1: "x" * 9000})
    batch = render_batch(requests, kustomizer.binaries, kustomizer.limits)
    assert batch == [_alone(r, kustomizer) for r in requests]
    assert [str(p) for p in batch[1]] == [  # type: ignore[union-attr]
        "services/shop/kustomize/kustomization.yaml:1:1: kustomize render: output over the "
        "limit of 8192 bytes; killed"]


def test_a_failing_kustomize_batch_is_each_cells_failure(kustomizer: ToolRenderers) -> None:
    """A base every cell fails on: each cell's problem as rendering it alone names it —
    from its own frame (kustomize-batch) or by rendering each cell alone after the
    generated kustomization failed as a whole (kubectl)."""
    broken = {**BASE, "service.yaml": "apiVersion: v1\nkind: Service\nmetadata: [oops]\n"}
    requests = _requests(_source("kustomize", broken), 3)
    framed = kustomizer.binaries.kustomize_batch is not None
    alone = [_alone(r, kustomizer) for r in requests]
    assert render_batch(requests, kustomizer.binaries, kustomizer.limits) == \
        (alone if framed else [None] * 3)
    kustomizer.workers = 2
    out = kustomizer.render_many(requests)
    assert out == alone
    assert all(isinstance(o, tuple) and o[0].path.endswith("kustomization.yaml")
               and "<render>" not in o[0].message for o in out)
    assert kustomizer.renders == 3
    assert kustomizer.tool_runs == (2 if framed else 1 + 3)  # a batch of 2, then the rest


def test_batches_never_hold_two_cells_of_one_namespace() -> None:
    source = _source("kustomize", BASE)
    requests = _requests(source, 5)
    requests[3] = ToolRequest(source, "cell-3", "ns-0", requests[3].layer)
    batches = cut(requests, 3)
    assert batches == [[0, 1, 2], [3, 4]]
    assert cut(requests, 10) == [[0, 1, 2, 4], [3]]


def test_many_cells_render_in_few_processes(kustomizer: ToolRenderers) -> None:
    kustomizer.workers = 2
    helm = _requests(_source("helm", CHART), 30)
    base = _requests(_source("kustomize", BASE), 30)
    out = kustomizer.render_many([*helm, *base])
    assert all(isinstance(o, str) for o in out)
    assert kustomizer.renders == 60 and kustomizer.tool_runs == 4
    assert out[7] == _alone(helm[7], kustomizer) and out[41] == _alone(base[11], kustomizer)
