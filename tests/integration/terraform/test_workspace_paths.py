"""Every write under a workspace stays inside it (no Terraform needed: refusals come first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.engine import TerraformSettings
from reconciler.adapters.terraform.workspace import Workspace, inside, workspace_for


class _NoEngine:
    def run(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("Terraform must not run for a refused stack")


def _ws(tmp_path: Path) -> Workspace:
    state = tmp_path / "state"
    return Workspace(state / "api" / "c1", "api", "c1", _NoEngine(),  # type: ignore[arg-type]
                     TerraformSettings(state_dir=state))


@pytest.mark.parametrize("name", [
    "../escape.tf", "../../../../evil", "sub/../../escape.tf", "/etc/evil.tf", "a//b.tf",
    "./main.tf", "", "a\\..\\b.tf", "nul\0.tf", ".",
])
def test_inside_refuses_names_leaving_or_abusing_the_root(tmp_path: Path, name: str) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(PermanentError, match="refusing to write"):
        inside(tmp_path / "root", name)


def test_inside_refuses_a_symlinked_directory_pointing_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "modules").symlink_to(tmp_path)
    with pytest.raises(PermanentError, match="outside the workspace"):
        inside(root, "modules/evil.tf")


def test_inside_accepts_nested_plain_paths(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    assert inside(tmp_path / "root", "modules/net/main.tf") == \
        (tmp_path / "root" / "modules" / "net" / "main.tf").resolve()


def test_prepare_refuses_an_escaping_stack_before_writing_anything(tmp_path: Path) -> None:
    ws = _ws(tmp_path)
    with pytest.raises(PermanentError, match="refusing to write"):
        ws.prepare({"main.tf": "# ok\n", "../../../escape.tf": "# evil\n"}, {})
    assert not list(tmp_path.rglob("escape.tf"))
    assert not (ws.root / "main.tf").exists()  # refused whole, not partly written


def test_workspace_names_are_single_components(tmp_path: Path) -> None:
    settings = TerraformSettings(state_dir=tmp_path / "state")
    with pytest.raises(PermanentError):
        workspace_for(settings, _NoEngine(), "api", "../../x")  # type: ignore[arg-type]
    (tmp_path / "state").mkdir()
    with pytest.raises(PermanentError):
        workspace_for(settings, _NoEngine(), "..", "c1")  # type: ignore[arg-type]
