"""``reconciler flag off``: the kill switch commits and pushes to a real bare remote, from a
real clone, and refuses clearly (nothing pushed) when it cannot turn the flag off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from reconciler.cli import main
from reconciler.testing.gitserver import GIT_ENV, git
from tests.core.support import BASE

FLAG = """apiVersion: reconciler.dev/v1
kind: Flag
metadata: {name: checkout}
spec:
  variants:
    - {name: "off", value: false}
    - {name: "on", value: true}
  defaultVariant: "off"
  groups:
    # the canary first
    - groups: [canary, zone, rest]
      variant: "on"
"""


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The person's git identity (a fresh CI machine has none configured)."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(BASE, src)
    (src / "flags").mkdir()
    (src / "flags" / "checkout.yaml").write_text(FLAG)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "fleet with checkout on")
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "remote.git"))
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(tmp_path / "me"))
    return tmp_path / "me"


def remote_flag(clone: Path) -> dict[str, str]:
    text = git(clone.parent / "remote.git", "show", "main:flags/checkout.yaml")
    doc = yaml.safe_load(text)  # YAML 1.1, as the daemon's fast reader: quotes must stay
    return {g: e["variant"] for e in doc["spec"]["groups"] for g in e["groups"]}


def test_off_everywhere_is_pushed(clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flag", "off", "checkout", "--repo", str(clone), "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["groups"] == ["canary", "zone", "rest"] and out["pushed"] is True
    assert out["variant"] == "off"
    assert remote_flag(clone) == dict.fromkeys(("canary", "zone", "rest"), "off")
    bare = clone.parent / "remote.git"
    assert git(bare, "rev-parse", "main") == out["commit"]
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert message.startswith("Kill switch: flag checkout off in canary, zone, rest")
    assert "Reconciler-Kill-Switch: checkout" in message
    assert git(bare, "show", "--format=", "--name-only", "main") == "flags/checkout.yaml"


def test_some_groups_and_rebase_over_a_concurrent_push(
        clone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(other))
    (other / "README").write_text("someone else's change\n")
    git(other, "add", "README")
    git(other, "commit", "-qm", "other")
    git(other, "push", "-q", "origin", "main")
    assert main(["flag", "off", "checkout", "--repo", str(clone), "--groups", "zone,rest"]) == 0
    assert "flag checkout: off in zone, rest" in capsys.readouterr().out
    assert remote_flag(clone) == {"canary": "on", "zone": "off", "rest": "off"}
    assert "# the canary first" in (clone / "flags" / "checkout.yaml").read_text()
    assert main(["flag", "off", "checkout", "--repo", str(clone), "--groups", "zone"]) == 0
    assert "already serves 'off'" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no flag 'nope'"),
    (["../x"], "is not a flag name"),
    (["checkout", "--groups", "moon"], "no entry names group(s) moon"),
    (["checkout", "--remote=--upload-pack=touch /tmp/x"], "is not a remote name"),
])
def test_clear_errors_and_nothing_pushed(clone: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    before = git(clone.parent / "remote.git", "rev-parse", "main")
    assert main(["flag", "off", *args, "--repo", str(clone)]) == 1
    assert message in capsys.readouterr().err
    assert git(clone.parent / "remote.git", "rev-parse", "main") == before


def test_invalid_revision_is_not_committed(clone: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (clone / "cells" / "c1.yaml").write_text("kind: Cell\n")  # broken, not committed
    assert main(["flag", "off", "checkout", "--repo", str(clone), "--no-push"]) == 1
    err = capsys.readouterr().err
    assert "the revision would be invalid" in err and "cells/c1.yaml:" in err
    assert 'variant: "on"' in (clone / "flags" / "checkout.yaml").read_text()
    assert git(clone, "log", "-1", "--format=%s") == "fleet with checkout on"


def test_dirty_flag_file_is_refused(clone: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clone / "flags" / "checkout.yaml").write_text(FLAG + "# mine\n")
    assert main(["flag", "off", "checkout", "--repo", str(clone)]) == 1
    assert "uncommitted changes" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flag", "off", "--help"]) == 0
    assert "--groups" in capsys.readouterr().out
