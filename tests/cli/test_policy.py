"""The operator's policy (issue #14): each probe a pull request could make is rejected
whole with ``file:line:col`` — by ``reconciler validate --policy`` before merge and by the
daemon's load of the revision (nothing of it applied) — while the example passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.compose.oneshot import checked, load_directory, read_policy
from reconciler.compose.reconciler import BackendSettings, directory_reconciler
from reconciler.core.policy import PolicyError, policy_from_doc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE, POLICY = ROOT / "example-repo", ROOT / "examples" / "policy.yaml"
CELL = "cells/euw1-a-01.yaml"
Edit = Callable[[Path], None]


def _sub(path: str, old: str, new: str) -> Edit:
    def edit(repo: Path) -> None:
        f = repo / path
        text = f.read_text()
        assert old in text, (path, old)
        f.write_text(text.replace(old, new, 1))
    return edit


def _append(path: str, text: str) -> Edit:
    def edit(repo: Path) -> None:
        f = repo / path
        f.write_text(f.read_text() + text)
    return edit


CLUSTER_ADMIN = """---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pwned}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: "{{ cell.namespace }}"}]
"""

CASES: list[tuple[str, Edit, str]] = [
    ("namespace outside the pattern", _sub(CELL, "namespace: euw1-a-01", "namespace: kube-system"),
     f"{CELL}:1:1: spec.kubernetes.namespace: 'kube-system' is not allowed for this cluster"),
    ("cluster not granted", _sub(CELL, "context: eu-west-1", "context: prod-admin"),
     f"{CELL}:1:1: spec.kubernetes: the target (context 'prod-admin', kubeconfig None) is not"),
    ("database host not granted", _sub(CELL, "host: 127.0.0.1", "host: 203.0.113.9"),
     f"{CELL}:1:1: spec.databases[main]: host 203.0.113.9:5432 is not allowed"),
    ("the Git token as a database secret",
     _sub(CELL, "secretEnv: SHOP_DB_PASSWORD", "secretFile: /var/lib/reconciler/git-token"),
     f"{CELL}:1:1: spec.databases[main]: secretFile /var/lib/reconciler/git-token is not "
     "granted to host 127.0.0.1"),
    ("any environment variable as a database secret",
     _sub(CELL, "secretEnv: SHOP_DB_PASSWORD", "secretEnv: RECONCILER_WEBHOOK_SECRET"),
     f"{CELL}:1:1: spec.databases[main]: secretEnv RECONCILER_WEBHOOK_SECRET is not granted"),
    ("cluster-admin binding", _append("services/api/kubernetes/configmap.yaml", CLUSTER_ADMIN),
     "services/api/kubernetes/configmap.yaml:13:1: kind ClusterRoleBinding is not allowed"),
    ("a Secret", _append("services/api/kubernetes/service.yaml",
                         "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"),
     "kind Secret is not allowed"),
    ("local-exec", _append("services/api/terraform/main.tf",
                           'resource "terraform_data" "x" {\n  provisioner "local-exec" {\n'
                           '    command = "cat /var/lib/reconciler/git-token"\n  }\n}\n'),
     "services/api/terraform/main.tf:"),
    ("external data source", _append("services/api/terraform/main.tf",
                                     'data "external" "x" {\n  program = ["sh"]\n}\n'),
     "the external data source run code on the host and are not allowed"),
    ("provider not granted", _sub("services/api/terraform/main.tf", 'required_version = ">= 1.4"',
                                  'required_providers {\n    null = { source = '
                                  '"hashicorp/null" }\n  }'),
     "provider registry.terraform.io/hashicorp/null is not allowed"),
]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    out = tmp_path / "repo"
    shutil.copytree(EXAMPLE, out, ignore=shutil.ignore_patterns("status"))
    return out


def test_the_example_passes_its_policy() -> None:
    result = checked(load_directory(EXAMPLE), read_policy(POLICY))
    assert result.ok, [str(e) for e in result.errors]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_violation_rejects_the_revision_whole(repo: Path, edit: Edit, expected: str) -> None:
    assert load_directory(repo).ok  # valid without a policy: the policy is what refuses it
    edit(repo)
    plain = load_directory(repo)
    assert plain.ok, [str(e) for e in plain.errors]
    result = checked(plain, read_policy(POLICY))
    assert result.desired is None
    assert any(expected in str(e) for e in result.errors), [str(e) for e in result.errors]


def test_validate_policy_exits_1_with_every_violation(repo: Path) -> None:
    CASES[0][1](repo)
    CASES[5][1](repo)
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", str(repo),
                           "--policy", str(POLICY)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert any(CASES[0][2] in line for line in lines), lines
    assert any(CASES[5][2] in line for line in lines), lines
    assert lines[-1] == "2 errors: desired state rejected"
    ok = subprocess.run([sys.executable, "-m", "reconciler.cli", "validate", str(EXAMPLE),
                         "--policy", str(POLICY)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_the_daemon_rejects_a_violating_revision_and_applies_nothing(
        repo: Path, tmp_path: Path) -> None:
    CASES[1][1](repo)
    rec = directory_reconciler(repo, BackendSettings(tmp_path / "state",
                                                     policy=read_policy(POLICY)))
    report = rec.tick()
    assert report.plan is None and report.outcomes == ()
    assert any(CASES[1][2] in e for e in report.errors), report.errors


@pytest.mark.parametrize(("doc", "message"), [
    ({"clusters": [{"context": "x"}]}, "clusters[0].namespaces: at least one"),
    ({"clusters": [], "databases": [{"host": 5}]}, "databases[0].host"),
    ({"terraform": {"provisioners": "yes"}}, "terraform.provisioners: true or false"),
    ({"tenants": []}, "unknown key(s) tenants"),
])
def test_a_malformed_policy_names_the_key(doc: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        policy_from_doc(doc, "policy.yaml")
