"""``job`` migration steps: the step's Job template rendered for the cell and handed to
a Job executor (``adapters.kubernetes.jobs.KubernetesJobs``, wired by ``compose``).

Owns: rendering the template and naming the Job uniquely per migration, action and step
checksum, so a re-run after a crash finds the same Job instead of starting a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.migrations.steps import StepTexts
from reconciler.core.model import Cell, DesiredState, Migration
from reconciler.core.render import default_context, render_template


class JobExecutor(Protocol):
    """Runs one Job to completion in a cell; returns its name."""

    def run_to_completion(self, cell: Cell, job: dict[str, Any], timeout: int) -> str:
        ...


def job_name(migration: Migration, step: StepTexts) -> str:
    """A DNS-1123 name unique per migration, action and step content."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"migrate-{migration.id}-{step.action}".lower())
    return f"{base[:52].strip('-')}-{step.checksum[:8]}"


@dataclass
class MigrationJobRunner:
    """Runs job steps through ``jobs``."""

    jobs: JobExecutor

    def _render(self, desired: DesiredState, cell: Cell, migration: Migration,
                step: StepTexts, name: str) -> dict[str, Any]:
        path, text = step.files[0]
        version = desired.desired_version(migration.service, cell)
        ctx = default_context(cell, migration.service, str(version or ""))
        objs = render_template(path, text, ctx)
        jobs = [o for o in objs if o.get("kind") == "Job"]
        if len(objs) != 1 or not jobs:
            raise PermanentError(f"{path}: a job step template must hold exactly one Job")
        job = jobs[0]
        meta = job.setdefault("metadata", {})
        meta["name"], meta["namespace"] = name, cell.kubernetes.namespace
        meta.setdefault("labels", {}).update({"reconciler.dev/cell": cell.name,
                                              "reconciler.dev/migration": migration.id})
        return job

    def run(self, desired: DesiredState, cell: Cell, migration: Migration,
            step: StepTexts) -> str:
        job = self._render(desired, cell, migration, step, job_name(migration, step))
        return self.jobs.run_to_completion(cell, job, step.timeout_seconds)
