"""The parts ``reconciler diff`` reads through: revisions of a Git repository without a
checkout, real Terraform plans in scratch workspaces, and the API server's dry-run.

Owns: wiring the adapters for a preview — a revision read straight from the object
database (any rev-parse spec; a repository kept in a subdirectory of a larger one is
read under that subdirectory), the working tree when no head revision is named, the
Terraform engine the daemon's configuration chooses (planning in a scratch copy of each
cell's workspace, so the daemon's state directory is never written), and a Kubernetes
client per cell for server-side dry-runs. Decides nothing: what changes and how it is
shown is ``core.preview``'s.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2

from reconciler.adapters.errors import AdapterError, PermanentError
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.git.tree import GitTreeSource, TreeCache
from reconciler.compose.tools import RenderSettings, manifest_tools
from reconciler.compose.twoparse import parse_in_two
from reconciler.core.loader import LoadResult, ParseCache, load_repository
from reconciler.core.model import DesiredState
from reconciler.core.preview import TerraformPlanSummary, placeholder_outputs
from reconciler.core.render import default_context, render_service
from reconciler.core.source import RepoSource, SubdirSource

if TYPE_CHECKING:  # the Kubernetes and Terraform parts load only when asked for (startup)
    from reconciler.adapters.kubernetes.dryrun import DryRunAnswer
    from reconciler.adapters.terraform import TerraformRunner
    from reconciler.compose.reconciler import BackendSettings


@dataclass(frozen=True)
class Revisions:
    """The base and head of a preview, loaded (with one parse cache)."""

    base: LoadResult | None
    head: LoadResult
    base_label: str | None
    head_label: str
    #: Where the head's files are on disk (None: read from Git), for error paths.
    head_dir: Path | None


def _git(path: Path) -> tuple[pygit2.Repository, str] | None:
    """The Git repository holding ``path`` and ``path``'s directory inside its tree."""
    found = pygit2.discover_repository(str(path))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    top = Path(repo.workdir).resolve() if repo.workdir else Path(repo.path).resolve()
    if repo.is_bare:
        return repo, ""
    try:
        prefix = path.resolve().relative_to(top).as_posix()
    except ValueError:
        return repo, ""
    return repo, "" if prefix == "." else prefix


def _label(repo: pygit2.Repository, rev: str) -> str:
    commit = repo.revparse_single(rev).peel(pygit2.Commit)
    short = str(commit.id)[:12]
    return short if rev == short else f"{rev} ({short})"


def _tree(repo: pygit2.Repository, rev: str, prefix: str, trees: TreeCache) -> RepoSource:
    source: RepoSource = GitTreeSource(repo, rev, trees)
    return SubdirSource(source, prefix) if prefix else source


def load_revisions(path: str, base: str | None, head: str | None,
                   render: RenderSettings | None = None) -> Revisions:
    """Base and head of ``path``: ``head`` (a revision) or else the working tree (the
    directory itself); ``base`` a revision, by default ``HEAD`` when ``path`` is in a
    Git repository (no base otherwise: every cell is then an install). ``render``: the
    operator's render settings (None: the environment's). PermanentError with the
    reason when a revision or the directory cannot be read."""
    where = Path(path)
    if not where.exists():
        raise PermanentError(f"{path}: no such directory or repository")
    git = _git(where)
    if git is None and (base or head):
        raise PermanentError(f"{path}: not in a Git repository, so --base/--head cannot be "
                             "read (compare two directories by committing them)")
    cache, trees = ParseCache(), TreeCache()  # what base and head share is read once
    tools = manifest_tools(None, render)
    base_result = base_label = None
    if git is not None:
        repo, prefix = git
        if repo.is_bare and head is None:
            head = "HEAD"
        base = base or "HEAD"
        try:
            base_label = _label(repo, base)
            base_result = load_repository(_tree(repo, base, prefix, trees), cache, parse_in_two,
                                          tools)
        except (KeyError, ValueError, pygit2.GitError) as e:
            raise PermanentError(f"--base {base}: unknown revision ({e})") from None
        if head is not None:
            try:
                head_label = _label(repo, head)
                head_result = load_repository(_tree(repo, head, prefix, trees), cache, parse_in_two,
                                          tools)
            except (KeyError, ValueError, pygit2.GitError) as e:
                raise PermanentError(f"--head {head}: unknown revision ({e})") from None
            return Revisions(base_result, head_result, base_label, head_label, None)
    head_result = load_repository(DirectorySource(where), cache, parse_in_two, tools)
    return Revisions(base_result, head_result, base_label, "the working tree", where)


# -- Terraform ------------------------------------------------------------------------


def _plan_one(runner: TerraformRunner, desired: DesiredState, recorded: Path,
              cell: str, service: str, version: str) -> TerraformPlanSummary:
    from reconciler.adapters.terraform import workspace_for

    engine = runner.engine.name if runner.engine is not None else "?"
    try:
        state = recorded / service / cell / "terraform.tfstate"
        assert runner.engine is not None
        ws = workspace_for(runner.settings, runner.engine, service, cell)
        note = "no recorded state: planned as a first apply"
        if state.is_file():
            ws.root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(state, ws.root / "terraform.tfstate")
            note = ""
        tf = runner.plan(desired, desired.cells[cell], service, version)
    except AdapterError as e:
        return TerraformPlanSummary(engine, error=str(e))
    counts = tf.counts()
    return TerraformPlanSummary(engine, counts["add"], counts["change"], counts["destroy"],
                                tuple((c.address, c.action) for c in tf.changes), note)


def terraform_plans(desired: DesiredState, targets: Sequence[tuple[str, str, str]],
                    s: BackendSettings, parallel: int = 4
                    ) -> tuple[str, dict[tuple[str, str], TerraformPlanSummary]]:
    """A real plan of each (cell, service, version) stack with the engine and sandbox the
    daemon's settings choose, in a scratch workspace seeded with the state recorded under
    the daemon's state directory (never written); the engine's name and the summaries."""
    from reconciler.adapters.terraform import TerraformRunner
    from reconciler.compose.reconciler import terraform_settings

    with tempfile.TemporaryDirectory(prefix="reconciler-diff-") as scratch:
        settings = replace(terraform_settings(s), state_dir=Path(scratch))
        runner = TerraformRunner(settings)
        recorded = s.state_dir / "terraform"
        name = runner.engine.name if runner.engine is not None else "?"
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = {(cell, svc): pool.submit(_plan_one, runner, desired, recorded, cell, svc,
                                                version)
                       for cell, svc, version in targets}
            return name, {k: f.result() for k, f in futures.items()}


# -- the API server -------------------------------------------------------------------


def _outputs(desired: DesiredState, cell: str, service: str,
             s: BackendSettings) -> dict[str, Any]:
    """The stack's outputs recorded by the daemon's last apply (placeholders otherwise)."""
    from reconciler.adapters.terraform import workspace_for
    from reconciler.compose.reconciler import terraform_settings

    out: dict[str, Any] = placeholder_outputs(desired, service)
    if desired.services[service].terraform is None:
        return out
    record = workspace_for(terraform_settings(s), _NoEngine(), service, cell).record()
    out.update(record.get("outputs") or {})
    return out


class _NoEngine:
    """Reading a workspace's record runs no Terraform command."""

    name = "none"

    def run(self, *args: object, **kwargs: object) -> Any:
        raise PermanentError("no Terraform command runs while previewing against a cluster")


def server_answers(desired: DesiredState, targets: Sequence[tuple[str, str, str, str | None]],
                   s: BackendSettings, parallel: int = 8
                   ) -> dict[tuple[str, str], list[DryRunAnswer]]:
    """The API server's dry-run of each (cell, service, version, previous version)'s
    apply, with the Terraform outputs the daemon recorded; an unreachable cluster is an
    AdapterError."""
    from reconciler.adapters.kubernetes.client import ClientCache
    from reconciler.adapters.kubernetes.dryrun import dry_run_service

    clients = ClientCache()

    def one(cell: str, service: str, version: str,
            previous: str | None) -> list[DryRunAnswer]:
        c = desired.cells[cell]
        objs = render_service(desired, default_context(c, service, version,
                                                       _outputs(desired, cell, service, s)))
        return dry_run_service(clients.for_cell(c), c, service, version, objs, previous)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {(cell, svc): pool.submit(one, cell, svc, version, previous)
                   for cell, svc, version, previous in targets}
        return {k: f.result() for k, f in futures.items()}
