"""``reconciler validate`` renders every template for every cell and checks each object
against the Kubernetes API schema offline (no cluster): each mistake a new user makes is
one ``file:line:col`` error, the path as seen from the current directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.test_cli import EXAMPLE, run

DEPLOYMENT = "services/api/kubernetes/deployment.yaml"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('image: "registry.shop.example/api:{{ version }}"',
     'image: "registry.shop.example/api:{{ verison }}"',
     f"repo/{DEPLOYMENT}:24:45: unknown template name 'verison' (rendering for cell "
     "euw1-a-01 and 13 more)"),
    ("replicas: {{ vars.replicas }}", "replicas: {{ vars.replica_count }}",
     f"repo/{DEPLOYMENT}:7:13: unknown template name 'vars.replica_count' (rendering for cell "
     "euw1-a-01 and 13 more)"),
    ("          readinessProbe:", "          readinesProbe:",
     f"repo/{DEPLOYMENT}:30:11: Deployment api: spec.template.spec.containers.0: Additional "
     "properties are not allowed ('readinesProbe' was unexpected) (Kubernetes v1.37.2 API "
     "schema) (rendering for cell euw1-a-01 and 13 more)"),
], ids=["template-typo", "missing-variable", "schema-invalid-object"])
def test_validate_names_the_template_position(tmp_path: Path, old: str, new: str,
                                             expected: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    template = repo / DEPLOYMENT
    assert old in template.read_text()
    template.write_text(template.read_text().replace(old, new))
    r = run("validate", "repo", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [expected, "1 error: desired state rejected"]
    plan = run("plan", "repo", cwd=tmp_path)
    assert plan.returncode == 1 and expected in plan.stderr
