"""The Terraform sandbox's pieces without Terraform: the environment built from nothing,
bubblewrap's view, and the deadline that kills a command's whole process tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.terraform.engine import TerraformSettings, command_env, mirror_cli_config
from reconciler.adapters.terraform.engines import cli_config_mirrors, sandbox_for
from reconciler.adapters.terraform.sandbox import (
    Bubblewrap,
    NoSandbox,
    Sandbox,
    bwrap_problem,
    make_sandbox,
    run_isolated,
)


def test_the_environment_is_built_from_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", "t0ken")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("TF_LOG", "TRACE")
    monkeypatch.setenv("TF_PLUGIN_CACHE_DIR", "/shared")
    env = command_env(TerraformSettings(cli_config_file=Path("/etc/tfrc"),
                                        credential_env=("AWS_REGION", "TF_LOG", "UNSET")))
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                   "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1",
                   "TF_CLI_CONFIG_FILE": "/etc/tfrc", "AWS_REGION": "eu-west-1"}


def test_the_bubblewrap_view(tmp_path: Path) -> None:
    work, mirror = tmp_path / "state" / "terraform" / "app" / "c1", tmp_path / "mirror"
    work.mkdir(parents=True)
    mirror.mkdir()
    argv = Bubblewrap("/usr/bin/bwrap", network=False, operator_paths=(mirror,)).wrap(
        ["terraform", "plan"], work, [tmp_path / "missing", Path("/usr/lib")])
    joined = " ".join(argv)
    assert argv[-3:] == ["--", "terraform", "plan"]
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
                 "--cap-drop ALL", "--uid 65534", "--proc /proc", "--dev /dev",
                 "--tmpfs /tmp", "--remount-ro /", f"--chdir {work.resolve()}"):
        assert flag in joined
    assert "--share-net" not in argv and "--clearenv" not in argv
    assert f"--bind {work.resolve()} {work.resolve()}" in joined
    assert f"--ro-bind {mirror.resolve()} {mirror.resolve()}" in joined
    assert str(tmp_path / "missing") not in joined  # absent paths are not bound
    assert f"{tmp_path / 'state'} " not in joined  # no sibling workspace, no Git cache
    assert "--ro-bind /etc /etc" not in joined and "--ro-bind-try /etc/ssl/private" not in joined
    assert joined.count("/usr/lib") <= 2  # under /usr: visible already, not bound again


@pytest.mark.parametrize("kind", ["none", "bwrap"])
def test_a_command_past_its_deadline_is_killed_with_its_children(tmp_path: Path,
                                                                  kind: str) -> None:
    if kind == "bwrap" and bwrap_problem():
        if os.environ.get("CI") == "true":
            pytest.fail(f"bubblewrap cannot run here: {bwrap_problem()}")
        pytest.skip(f"bubblewrap cannot run here: {bwrap_problem()}")
    sandbox: Sandbox = make_sandbox(kind, True, [])
    marker = tmp_path / "still-running"
    started = time.monotonic()
    with pytest.raises(TemporaryError, match="no result after 1 s"):
        run_isolated(sandbox, ["/bin/sh", "-c", f"(sleep 3; touch {marker}) & sleep 30"],
                     tmp_path, {"PATH": "/usr/bin:/bin"}, 1.0)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists()  # the background child died with the command


def test_no_sandbox_gives_an_empty_home_of_its_own(tmp_path: Path) -> None:
    done = run_isolated(NoSandbox(), ["/bin/sh", "-c", 'echo "$HOME"; ls -A "$HOME"'],
                        tmp_path, {"PATH": "/usr/bin:/bin"}, 30.0)
    home = done.stdout.splitlines()[0]
    assert home != os.environ.get("HOME") and done.stdout.splitlines()[1:] == []
    assert not Path(home).exists()  # removed after the command


def test_unknown_sandbox_is_refused() -> None:
    with pytest.raises(PermanentError, match="'docker' is not a sandbox"):
        make_sandbox("docker", True, [])


def test_the_cli_configs_filesystem_mirrors_are_shown_in_the_sandbox(tmp_path: Path) -> None:
    """Before: with a CLI config installing from a filesystem mirror and no
    ``provider_mirror`` set, init in bwrap failed ("Failed to query available provider
    packages"): the mirror was not in the sandbox's view."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    rc = tmp_path / "terraformrc"
    rc.write_text(mirror_cli_config(mirror, ["registry.terraform.io/hashicorp/local"]))
    assert cli_config_mirrors(rc) == [mirror]
    assert cli_config_mirrors(tmp_path / "missing") == []
    box = sandbox_for(TerraformSettings(state_dir=tmp_path, sandbox="bwrap",
                                        cli_config_file=rc))
    assert isinstance(box, Bubblewrap)
    assert mirror in box.operator_paths and rc in box.operator_paths
