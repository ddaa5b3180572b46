"""A Terraform stack in the repository may not ship state, variables files, our
bookkeeping, provider binaries or CLI configuration (issue #14): refused at load, the
whole revision rejected, and refused again by the workspace before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.engine import TerraformSettings
from reconciler.adapters.terraform.workspace import Workspace
from reconciler.compose.oneshot import load_directory
from reconciler.core.stackfiles import stack_file_problem

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"
STACK = "services/api/terraform"

NAMES = [  # (name inside the stack, refused because ... or None)
    ("terraform.tfstate", "would replace it"),
    ("Terraform.TFSTATE.backup", "would replace it"),
    ("prod.tfvars", "variables come from the cell"),
    ("x.auto.tfvars.json", "variables come from the cell"),
    ("applied.json", "record of the last apply"),
    (".reconciler-init", "record of the last init"),
    ("reconciler.tfplan", "saved plan"),
    (".terraform/providers/registry.terraform.io/evil/x/1.0.0/linux_amd64/terraform-provider-x",
     "installed by init"),
    ("modules/net/.terraform/plugins/x", "installed by init"),
    (".terraformrc", "CLI configuration"),
    ("terraform.d/plugins/registry.terraform.io/evil/x/1.0.0/linux_amd64/terraform-provider-x",
     "implicit local mirror"),
    ("modules/net/.terraform.d/plugins/x", "implicit local mirror"),
    ("not-terraform.d/x", None),
    ("main.tf", None), ("outputs.tf.json", None), ("modules/net/main.tf", None),
    (".terraform.lock.hcl", None), ("templates/user-data.tftpl", None),
]


@pytest.mark.parametrize(("name", "why"), NAMES, ids=[n for n, _ in NAMES])
def test_stack_file_names(name: str, why: str | None) -> None:
    problem = stack_file_problem(name)
    assert (problem is None) == (why is None), problem
    if why is not None:
        assert problem is not None and why in problem and repr(name) in problem


# (a directory source skips .terraform/ directories, a local init's leftovers; from a Git
# tree they are refused by the same check: see test_stack_file_names)
@pytest.mark.parametrize("name", ["terraform.tfstate", "applied.json", "prod.tfvars"])
def test_a_stack_shipping_it_rejects_the_revision(tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("status"))
    assert load_directory(repo).ok
    target = repo / STACK / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('{"version": 4, "outputs": {"queue_name": {"value": "forged"}}}\n')
    result = load_directory(repo)
    assert result.desired is None
    assert [str(e) for e in result.errors] == [
        f"{STACK}/{name}:1:1: {stack_file_problem(name)}"]


class _NoEngine:
    def run(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("Terraform must not run for a refused stack")


def test_the_workspace_refuses_it_before_writing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ws = Workspace(state / "api" / "c1", "api", "c1", _NoEngine(),  # type: ignore[arg-type]
                   TerraformSettings(state_dir=state))
    with pytest.raises(PermanentError, match=r"may not ship 'terraform\.tfstate'"):
        ws.prepare({"main.tf": "", "terraform.tfstate": "{}"}, {})
    assert not (state / "api" / "c1" / "terraform.tfstate").exists()
    assert not (state / "api" / "c1" / "main.tf").exists()
