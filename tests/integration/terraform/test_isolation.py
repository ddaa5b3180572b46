"""Terraform runs out of reach of the daemon's credentials and files (issue #14, item 3).

A stack is code from the desired-state repository. Whatever it does — ``file()`` of a
path outside its workspace, a ``local-exec`` that dumps its environment or reads the
daemon's through ``/proc`` — it must not see the daemon's Git token, webhook secret,
database passwords, Git cache or another cell's state. Real Terraform (the embedded
engine, and the external binary when there is one) in a real bubblewrap sandbox; a
normal stack still plans, applies and hands its outputs on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform import TerraformRunner, TerraformSettings
from reconciler.adapters.terraform.engine import DEFAULT_MIRROR
from reconciler.adapters.terraform.engines import find_binary
from reconciler.adapters.terraform.sandbox import bwrap_problem
from reconciler.compose.reconciler import BackendSettings, terraform_settings
from reconciler.core.model import (
    Cell,
    DesiredState,
    Fleet,
    HealthSettings,
    KubernetesTarget,
    RollbackPolicy,
    Service,
    SourceRef,
    StatusConfig,
    frozen_map,
)
from reconciler.core.policy import policy_from_doc
from reconciler.daemon.config import ConfigError, load_config
from tests.integration.terraform.conftest import unavailable

pytestmark = pytest.mark.terraform

TOKEN = "ghp-daemon-git-token-0xfeed"
WEBHOOK = "daemon-webhook-secret-0xbeef"
DB_PASSWORD = "daemon-db-password-0xcafe"
OTHER_STATE = "other-cell-state-0xdead"
GRANTED = "granted-provider-credential-0xf00d"

HEADER = """\
terraform {
  required_providers {
    local = { source = "hashicorp/local", version = "1.4.0" }
  }
}
variable "cell" { type = string }
variable "region" { type = string }
variable "zone" { type = string }
variable "service_version" { type = string }
variable "probe" { type = string }
"""

READ_FILE = HEADER + """\
output "leak" { value = file(var.probe) }
"""

DUMP_ENV = HEADER + """\
resource "terraform_data" "probe" {
  provisioner "local-exec" {
    command = "env > env.txt; cat /proc/${var.probe}/environ > daemon-env.txt 2>/dev/null; true"
  }
}
"""

NORMAL = HEADER + """\
resource "local_file" "config" {
  filename = "${path.module}/out/${var.cell}.conf"
  content  = "cell=${var.cell} version=${var.service_version}\\n"
}
resource "terraform_data" "queue" {
  input = "orders-${var.cell}"
}
output "queue" { value = terraform_data.queue.output }
output "conf" { value = local_file.config.filename }
"""


@dataclasses.dataclass(frozen=True)
class Daemon:
    """The files a daemon keeps, laid out as ``reconciler run`` lays them out."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def token(self) -> Path:
        return self.root / "secrets" / "git-token"

    @property
    def webhook(self) -> Path:
        return self.root / "secrets" / "webhook"

    @property
    def git_config(self) -> Path:
        return self.state / "git" / "config"

    @property
    def other_cell_state(self) -> Path:
        return self.state / "terraform" / "app" / "c9" / "terraform.tfstate"


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    d = Daemon(tmp_path / "daemon")
    for path, text in ((d.token, TOKEN), (d.webhook, WEBHOOK),
                       (d.git_config, f'[remote "origin"]\n\turl = https://x:{TOKEN}@git/\n'),
                       (d.other_cell_state, OTHER_STATE)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("RECONCILER_WEBHOOK_SECRET", WEBHOOK)
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    monkeypatch.setenv("SHOP_DB_PASSWORD", DB_PASSWORD)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", GRANTED)
    return d


def bwrap_settings(settings: TerraformSettings, daemon: Daemon,
                   **more: Any) -> TerraformSettings:
    """``settings`` sandboxed, with the daemon's state directory layout."""
    problem = bwrap_problem()
    if problem:
        unavailable(f"bubblewrap cannot run here ({problem}): run hack/bwrap.sh")
    return dataclasses.replace(settings, state_dir=daemon.state / "terraform",
                               sandbox="bwrap", provider_mirror=DEFAULT_MIRROR, **more)


def desired(stack: str, probe: str = "", cells: tuple[str, ...] = ("c1", "c2")) -> DesiredState:
    made = {n: Cell(n, "canary", "r1", "r1a", 1.0, KubernetesTarget(n),
                    frozen_map({"probe": probe}), (), SourceRef(f"cells/{n}.yaml"))
            for n in cells}
    fleet = Fleet("t", (), RollbackPolicy.WAVE, True, True, 10.0, (), (), StatusConfig(),
                  SourceRef("r"))
    svc = Service("app", (), "services/app/terraform", HealthSettings(), (), (), SourceRef("s"))
    return DesiredState("rev", fleet, made, {"app": svc}, {}, (),
                        files={"services/app/terraform/main.tf": stack})


def secrets_in(text: str) -> list[str]:
    return [s for s in (TOKEN, WEBHOOK, DB_PASSWORD, OTHER_STATE) if s in text]


@pytest.mark.parametrize("target", ["token", "webhook", "git_config", "other_cell_state"])
def test_file_outside_the_workspace_is_out_of_reach(settings: TerraformSettings,
                                                    daemon: Daemon, target: str) -> None:
    """``file()`` of the daemon's secrets, its Git cache or another cell's state fails
    in the sandbox, and nothing of the file reaches an error, a record or an output."""
    isolated = bwrap_settings(settings, daemon)
    path = getattr(daemon, target)
    state = desired(READ_FILE, str(path), cells=("c2",))
    tf = TerraformRunner(isolated)
    with pytest.raises(PermanentError) as err:
        tf.apply(state, state.cells["c2"], "app", "1.0.0")
    assert "no file exists" in str(err.value) or "Invalid function argument" in str(err.value)
    assert not secrets_in(str(err.value))
    assert tf.outputs(state, state.cells["c2"], "app") == {}
    assert not secrets_in(json.dumps(tf.read(state), default=str))


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_the_daemon_environment_is_not_inherited(settings: TerraformSettings, daemon: Daemon,
                                                 sandbox: str) -> None:
    """A provisioner's environment is the scrubbed one (Terraform's own settings and the
    credentials the policy grants, nothing else); in the sandbox it cannot read the
    daemon's environment through /proc either."""
    grant: dict[str, Any] = {"credential_env": ("AWS_SECRET_ACCESS_KEY",)}
    isolated = (bwrap_settings(settings, daemon, **grant) if sandbox == "bwrap" else
                dataclasses.replace(settings, state_dir=daemon.state / "terraform", **grant))
    state = desired(DUMP_ENV, str(os.getpid()), cells=("c2",))
    tf = TerraformRunner(isolated)
    tf.apply(state, state.cells["c2"], "app", "1.0.0")
    root = isolated.state_dir / "app" / "c2"
    env = dict(line.split("=", 1) for line in (root / "env.txt").read_text().splitlines()
               if "=" in line)
    assert not secrets_in(json.dumps(env)), sorted(env)
    assert env.get("TF_IN_AUTOMATION") == "1"
    assert env.get("AWS_SECRET_ACCESS_KEY") == GRANTED  # granted by the operator's policy
    assert not {"RECONCILER_WEBHOOK_SECRET", "GIT_TOKEN", "SHOP_DB_PASSWORD"} & set(env)
    if sandbox == "bwrap":
        assert not (root / "daemon-env.txt").read_text()  # another PID namespace


@pytest.mark.parametrize("network", [True, False], ids=["network", "no-network"])
def test_a_normal_stack_plans_applies_and_hands_on_outputs(settings: TerraformSettings,
                                                           daemon: Daemon,
                                                           network: bool) -> None:
    isolated = bwrap_settings(settings, daemon, network=network)
    state = desired(NORMAL)
    tf = TerraformRunner(isolated)
    c1 = state.cells["c1"]
    plan = tf.plan(state, c1, "app", "1.0.0")
    assert plan.counts() == {"add": 2, "change": 0, "destroy": 0}
    for name in ("c1", "c2"):
        outputs = tf.apply(state, state.cells[name], "app", "1.0.0")
        assert outputs == {"queue": f"orders-{name}", "conf": f"./out/{name}.conf"}
    conf = isolated.state_dir / "app" / "c1" / "out" / "c1.conf"
    assert conf.read_text() == "cell=c1 version=1.0.0\n"
    assert tf.read(state)["c2"]["app"].outputs["queue"] == "orders-c2"
    assert tf.plan(state, c1, "app", "1.0.0").empty
    conf.unlink()
    assert [c.address for c in tf.check_drift(state, c1, "app", "1.0.0").changes] == [
        "local_file.config"]
    tf.apply(state, c1, "app", "1.0.0")
    assert conf.exists() and tf.check_drift(state, c1, "app", "1.0.0").empty


def test_the_external_engine_runs_in_the_same_sandbox(settings: TerraformSettings,
                                                      daemon: Daemon) -> None:
    extra = Path.home() / ".cache" / "reconciler" / "bin" / "terraform"
    if find_binary(settings) is None and extra.exists():
        settings = dataclasses.replace(settings, binary=str(extra))
    if find_binary(settings) is None:
        unavailable("no terraform or tofu binary for the external engine "
                    "(hack/terraform.sh builds one)")
    isolated = bwrap_settings(settings, daemon, engine="external")
    state = desired(NORMAL)
    assert TerraformRunner(isolated).apply(state, state.cells["c1"], "app", "1.0.0") == {
        "queue": "orders-c1", "conf": "./out/c1.conf"}
    leak = desired(READ_FILE, str(daemon.token), cells=("c2",))
    with pytest.raises(PermanentError) as err:
        TerraformRunner(isolated).apply(leak, leak.cells["c2"], "app", "1.0.0")
    assert not secrets_in(str(err.value))


def test_bwrap_requested_but_missing_is_a_clear_error(settings: TerraformSettings,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PermanentError, match=r"terraform\.sandbox: bwrap.*not found"):
        TerraformRunner(dataclasses.replace(settings, sandbox="bwrap"))


def test_the_daemon_refuses_to_start_when_bwrap_is_unusable(tmp_path: Path) -> None:
    """``reconciler run`` with ``terraform.sandbox: bwrap`` and no usable bubblewrap exits
    at start with the reason, before it touches the repository."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"repo": {"url": str(tmp_path / "nowhere.git")},
                               "state_dir": str(tmp_path / "state"),
                               "terraform": {"sandbox": "bwrap"}}))
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    run = subprocess.run([sys.executable, "-m", "reconciler.cli", "run", "--config", str(cfg)],
                         env=env, capture_output=True, text=True, timeout=120, check=False,
                         cwd=Path(__file__).resolve().parents[3])
    assert run.returncode != 0
    assert "terraform.sandbox: bwrap" in run.stderr and "not found" in run.stderr, run.stderr
    assert not (tmp_path / "state" / "git").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("terraform:\n  sandbox: docker\n", "terraform.sandbox: bwrap or none"),
    ("terraform:\n  network: maybe\n", "terraform.network: true or false"),
    ("terraform:\n  sandboxx: bwrap\n", "unknown key(s) sandboxx"),
])
def test_sandbox_settings_are_checked(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config(str(path))


def test_config_and_policy_become_the_sandbox_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("terraform:\n  sandbox: bwrap\n  network: false\n"
                    "  provider_mirror: /var/lib/reconciler/tf-mirror\n")
    cfg = load_config(str(path))
    assert (cfg.terraform_sandbox, cfg.terraform_network, cfg.terraform_provider_mirror) == (
        "bwrap", False, "/var/lib/reconciler/tf-mirror")
    assert load_config(None).terraform_sandbox == "bwrap"  # the default: fail closed
    path.write_text("terraform:\n  sandbox: none\n")
    assert load_config(str(path)).terraform_sandbox == "none"
    policy = policy_from_doc({"terraform": {
        "credentialEnv": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        "credentialFiles": ["/etc/reconciler/aws/credentials"]}})
    s = terraform_settings(BackendSettings(
        state_dir=tmp_path, terraform_sandbox="bwrap", terraform_network=False,
        terraform_provider_mirror=Path("/m"), policy=policy))
    assert (s.sandbox, s.network, s.provider_mirror, s.state_dir) == (
        "bwrap", False, Path("/m"), tmp_path / "terraform")
    assert s.credential_env == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    assert s.credential_files == (Path("/etc/reconciler/aws/credentials"),)
    assert terraform_settings(BackendSettings(state_dir=tmp_path)).credential_env == ()

