"""The daemon's Terraform read (``adapters.terraform.live.Records``): each workspace's
record is parsed again exactly when its file changed, a removed record is gone, and an
unreadable one is an error rather than "never applied".

Records are plain files the runner writes (``Workspace._record``); no Terraform runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.adapters.terraform.engine import TerraformSettings
from reconciler.adapters.terraform.engines import make_engine
from reconciler.adapters.terraform.live import Records, terraform_live
from reconciler.adapters.terraform.workspace import RECORD
from tests.integration.terraform.test_terraform import desired


def write(root: Path, cell: str, input_hash: str, drifted: bool = False) -> Path:
    path = root / "app" / cell / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp")
    tmp.write_text(json.dumps({"inputHash": input_hash, "drifted": drifted,
                               "outputs": {"queue": f"q-{cell}"}}))
    os.replace(tmp, path)  # as the runner writes it
    return path


@pytest.fixture
def records(tmp_path: Path) -> tuple[Records, Path]:
    settings = TerraformSettings(state_dir=tmp_path / "state")
    return Records(settings, make_engine(settings)), settings.state_dir


def test_records_are_read_again_only_when_changed(records: tuple[Records, Path],
                                                  tmp_path: Path) -> None:
    read, root = records
    state = desired(tmp_path / "out")
    assert read(state) == {}, "never applied"
    write(root, "c1", "h1")
    first = read(state)
    assert first["c1"]["app"].applied_hash == "h1" and "c2" not in first
    again = read(state)
    assert again["c1"]["app"] is first["c1"]["app"], "an unchanged file is not parsed again"
    write(root, "c1", "h2", drifted=True)
    write(root, "c2", "h9")
    changed = read(state)
    assert changed["c1"]["app"].applied_hash == "h2" and changed["c1"]["app"].drifted
    assert changed["c2"]["app"].outputs == {"queue": "q-c2"}
    assert changed == terraform_live(state, read.settings, read.engine), \
        "the same as a read without memory"
    (root / "app" / "c2" / RECORD).unlink()
    assert "c2" not in read(state)


def test_a_damaged_record_reads_as_never_applied_and_recovers(
        records: tuple[Records, Path], tmp_path: Path) -> None:
    read, root = records
    state = desired(tmp_path / "out")
    path = write(root, "c1", "h1")
    path.write_text("{not json")
    assert read(state) == {}
    write(root, "c1", "h3")
    assert read(state)["c1"]["app"].applied_hash == "h3"


def test_an_unreadable_record_is_an_error(records: tuple[Records, Path],
                                          tmp_path: Path) -> None:
    read, root = records
    state = desired(tmp_path / "out")
    path = write(root, "c1", "h1")
    path.unlink()
    path.mkdir()  # a directory where the record should be: not "never applied"
    with pytest.raises(IsADirectoryError):
        read(state)
