"""A cell's workspace for one service's stack: files, variables, local state, records.

Owns the directory ``<state_dir>/<service>/<cell>/``: the stack's files (replaced on
every prepare, state kept), the variables file, Terraform's local state (unless the
stack declares a backend), and ``applied.json`` — the input hash of the last apply,
its non-sensitive outputs, and whether the last drift check found drift.

Every write under the workspace goes through ``inside``: the target is resolved and
must stay below the resolved workspace root, or the write is refused with a
PermanentError (a stack file named ``../../x`` never reaches the disk).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.terraform.diagnostics import to_error
from reconciler.adapters.terraform.engine import Engine, TerraformSettings, command_env
from reconciler.adapters.terraform.plan import TerraformPlan, changes_from_json
from reconciler.core.hashing import stable_hash
from reconciler.core.stackfiles import stack_file_problem

VARS_FILE = "reconciler.auto.tfvars.json"
RECORD = "applied.json"
PLAN_FILE = "reconciler.tfplan"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def inside(root: Path, name: str) -> Path:
    """``root / name``, proven to stay inside ``root``; PermanentError otherwise.

    ``name`` must be a relative ``/``-separated path without ``..``, empty or ``.``
    components, backslashes or NUL, and its resolved location (symlinks followed, as
    the write would) must lie below the resolved root.
    """
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise PermanentError(f"refusing to write {name!r}: not a plain relative path "
                             "inside the workspace")
    base = root.resolve()
    target = base.joinpath(*parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(base) or resolved == base:
        raise PermanentError(f"refusing to write {name!r}: it resolves to {resolved}, "
                             f"outside the workspace {base}")
    return resolved


@dataclass
class Workspace:
    """One service's stack in one cell."""

    root: Path
    service: str
    cell: str
    engine: Engine
    settings: TerraformSettings

    @property
    def where(self) -> str:
        return f"terraform {self.service} in {self.cell}"

    def _run(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
        result = self.engine.run(list(args), self.root, command_env(self.settings),
                                 self.settings.command_timeout_seconds)
        if result.returncode not in ok:
            raise to_error(result.stderr or result.stdout, self.where)
        return result.returncode, result.stdout

    def prepare(self, stack: Mapping[str, str], variables: Mapping[str, Any]) -> None:
        """Write the stack's files and variables; stale stack files are removed."""
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.glob("*.tf"):
            if old.name not in stack:
                old.unlink()
        for name in stack:  # the loader refuses these too; never trust one layer alone
            problem = stack_file_problem(name)
            if problem:
                raise PermanentError(problem)
        targets = {name: inside(self.root, name) for name in stack}  # all, before any write
        for name, text in stack.items():
            target = targets[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            target = inside(self.root, name)  # again: a directory made above is no link
            if not target.exists() or target.read_text() != text:
                _atomic_write(target, text)
        _atomic_write(self.root / VARS_FILE, json.dumps(dict(variables), sort_keys=True))
        self._init(stable_hash(dict(stack)))

    def _init(self, stack_hash: str) -> None:
        marker = self.root / ".reconciler-init"
        if marker.exists() and marker.read_text() == stack_hash:
            return
        self._run("init", "-input=false", "-no-color")
        _atomic_write(marker, stack_hash)

    def plan(self, input_hash: str, refresh_only: bool = False) -> TerraformPlan:
        """Plan with ``-detailed-exitcode``; the changes read back from ``show -json``."""
        args = ["plan", "-input=false", "-no-color", "-detailed-exitcode",
                f"-lock-timeout={self.settings.lock_timeout_seconds}s", f"-out={PLAN_FILE}"]
        if refresh_only:
            args.append("-refresh-only")
        code, _ = self._run(*args, ok=(0, 2))
        if code == 0:
            return TerraformPlan(input_hash, ())
        _, shown = self._run("show", "-json", "-no-color", PLAN_FILE)
        return TerraformPlan(input_hash, changes_from_json(json.loads(shown)))

    def apply(self, input_hash: str) -> dict[str, Any]:
        """Apply the inputs; record the hash and outputs; return non-sensitive outputs."""
        self._run("apply", "-input=false", "-no-color", "-auto-approve",
                  f"-lock-timeout={self.settings.lock_timeout_seconds}s")
        outputs = self.read_outputs()
        self._record({"inputHash": input_hash, "outputs": outputs, "drifted": False})
        return outputs

    def read_outputs(self) -> dict[str, Any]:
        """Outputs by name, sensitive ones left out entirely."""
        _, text = self._run("output", "-json", "-no-color")
        raw: dict[str, Any] = json.loads(text or "{}")
        return {k: v.get("value") for k, v in sorted(raw.items()) if not v.get("sensitive")}

    def check_drift(self, input_hash: str) -> TerraformPlan:
        """Plan against the recorded inputs; a non-empty plan is drift (recorded)."""
        record = self.record()
        result = self.plan(input_hash)
        if record.get("inputHash") == input_hash:
            self._record({**record, "drifted": not result.empty})
        return result

    def record(self) -> dict[str, Any]:
        """The last apply's record ({} when never applied)."""
        try:
            loaded: dict[str, Any] = json.loads((self.root / RECORD).read_text())
            return loaded
        except (FileNotFoundError, ValueError):
            return {}

    def _record(self, doc: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / RECORD, json.dumps(doc, sort_keys=True, indent=2))


def workspace_for(settings: TerraformSettings, engine: Engine, service: str,
                  cell: str) -> Workspace:
    """The workspace of ``service`` in ``cell`` under the settings' state directory."""
    for part in (service, cell):
        if "/" in part:
            raise PermanentError(f"refusing workspace name {part!r}: not one path component")
    state = Path(settings.state_dir)
    inside(state, f"{service}/{cell}")
    return Workspace(state / service / cell, service, cell, engine, settings)

