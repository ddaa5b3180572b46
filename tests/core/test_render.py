"""Rendering manifest templates for a cell: names, values, errors with positions."""

from __future__ import annotations

import re

import pytest

from reconciler.core.model import Cell, KubernetesTarget, SourceRef
from reconciler.core.render import (
    RenderContext,
    RenderError,
    default_context,
    parse_objects,
    render_template,
    render_text,
)

CELL = Cell(name="eu-1", group="canary", region="eu-west-1", zone="eu-west-1a", weight=5.0,
            kubernetes=KubernetesTarget(namespace="shop-eu"),
            terraform_vars={"replicas": 2, "tier": "gold", "debug": False},
            databases=(), source=SourceRef("cells/eu-1.yaml"))

TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ service.name }}-{{cell.name}}
  namespace: {{ cell.namespace }}
  labels: {zone: "{{ cell.zone }}", region: "{{ cell.region }}", group: "{{ cell.group }}"}
spec:
  replicas: {{ vars.replicas }}
  template:
    spec:
      containers:
      - name: app
        image: registry.local/web:{{ version }}
        env:
        - {name: DB_HOST, value: "{{ terraform.db_host }}"}
        - {name: DEBUG, value: "{{ vars.debug }}"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {tier: "{{ vars.tier }}"}
"""


def ctx() -> RenderContext:
    return default_context(CELL, "web", "1.2.3", {"db_host": "10.0.0.7"})


def test_renders_every_name_into_objects() -> None:
    dep, cm = render_template("services/web/kubernetes/app.yaml", TEMPLATE, ctx())
    assert dep["metadata"] == {"name": "web-eu-1", "namespace": "shop-eu", "labels": {
        "zone": "eu-west-1a", "region": "eu-west-1", "group": "canary"}}
    assert dep["spec"]["replicas"] == 2  # an int placeholder stays an int
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/web:1.2.3"
    assert container["env"] == [{"name": "DB_HOST", "value": "10.0.0.7"},
                                {"name": "DEBUG", "value": "false"}]
    assert cm["data"] == {"tier": "gold"}


def test_unknown_names_are_all_reported_with_positions() -> None:
    text = "a: {{ version }}\nb: {{ cell.colour }}\nc:  {{ terraform.nope }}\n"
    with pytest.raises(RenderError) as err:
        render_text("t.yaml", text, ctx().values())
    assert err.value.errors == ("t.yaml:2:4: unknown template name 'cell.colour'",
                                "t.yaml:3:5: unknown template name 'terraform.nope'")


def test_malformed_placeholder_is_an_error() -> None:
    with pytest.raises(RenderError, match=re.escape("malformed placeholder 'version | upper'")):
        render_text("t.yaml", "x: {{ version | upper }}", ctx().values())


def test_yaml_error_after_rendering_has_a_position() -> None:
    with pytest.raises(RenderError, match=r"^t.yaml:2:"):
        parse_objects("t.yaml", "kind: ConfigMap\n  bad: [\n")


def test_documents_must_be_kubernetes_objects() -> None:
    with pytest.raises(RenderError) as err:
        parse_objects("t.yaml", "kind: ConfigMap\n---\n- 1\n---\n")
    assert err.value.errors == (
        "t.yaml:1:1: document 1 needs apiVersion, kind and metadata.name",
        "t.yaml:3:1: document 2 is not a mapping")


def test_rendering_is_deterministic_and_version_sensitive() -> None:
    a = render_template("t.yaml", TEMPLATE, ctx())
    b = render_template("t.yaml", TEMPLATE, ctx())
    c = render_template("t.yaml", TEMPLATE, RenderContext(
        "1.2.4", CELL, "web", {"db_host": "10.0.0.7"}, dict(CELL.terraform_vars)))
    assert a == b
    assert a != c
