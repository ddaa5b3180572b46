"""A working directory as the source: symlinks and nested ``.git`` reject the revision."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.source import DirectorySource
from reconciler.core.loader import load_repository

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, path)
    (tmp_path / "secret").write_text("token\n")
    return path


def test_the_example_directory_loads(fleet: Path) -> None:
    assert load_repository(DirectorySource(fleet)).ok


@pytest.mark.parametrize(("make", "where", "message"), [
    (lambda f: (f / "services/api/terraform/secret.tf").symlink_to(f.parent / "secret"),
     "services/api/terraform/secret.tf", "symbolic links are not allowed in the repository"),
    (lambda f: (f / "services/api/terraform/mods").symlink_to(f.parent),
     "services/api/terraform/mods", "symbolic links are not allowed in the repository"),
    (lambda f: (f / "services/api/kubernetes/x.yaml").symlink_to("configmap.yaml"),
     "services/api/kubernetes/x.yaml", "symbolic links are not allowed in the repository"),
    (lambda f: ((f / "services/api/.git").mkdir(), (f / "services/api/.git/config")
                .write_text("[core]\n")),
     "services/api/.git/config", "path has a '.git' component"),
    (lambda f: (f / "services/api/terraform/a\\b.tf").write_text("# x\n"),
     "services/api/terraform/a\\b.tf", "path contains a backslash"),
])
def test_bad_entries_reject_the_whole_directory(fleet: Path, make: object, where: str,
                                                message: str) -> None:
    make(fleet)  # type: ignore[operator]
    result = load_repository(DirectorySource(fleet))
    assert result.desired is None
    assert f"{where}:1:1: {message}" in [str(p) for p in result.errors]


def test_read_never_follows_a_symlink(fleet: Path) -> None:
    (fleet / "services/api/terraform/secret.tf").symlink_to(fleet.parent / "secret")
    with pytest.raises(PermanentError):
        DirectorySource(fleet).read("services/api/terraform/secret.tf")
    with pytest.raises(PermanentError):
        DirectorySource(fleet).read("../secret")


def test_the_checkouts_own_git_directory_is_skipped(fleet: Path) -> None:
    (fleet / ".git").mkdir()
    (fleet / ".git" / "config").write_text("[core]\n")
    assert load_repository(DirectorySource(fleet)).ok
