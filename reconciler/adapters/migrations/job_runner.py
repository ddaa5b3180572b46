"""``job`` migration steps: a Kubernetes Job in the cell's namespace, run to completion.

Owns: rendering the step's Job template for the cell, creating the Job under a name that
is unique per migration, action and step checksum (so a re-run after a crash finds the
same Job instead of starting a second one), and waiting until it is Complete (done) or
Failed (a ``PermanentError`` with the Job's reason); a timeout is a ``TemporaryError``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.kubernetes.apply import apply_object, ensure_namespace
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient
from reconciler.adapters.migrations.steps import StepTexts
from reconciler.core.model import Cell, DesiredState, Migration
from reconciler.core.render import default_context, render_template


def job_name(migration: Migration, step: StepTexts) -> str:
    """A DNS-1123 name unique per migration, action and step content."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"migrate-{migration.id}-{step.action}".lower())
    return f"{base[:52].strip('-')}-{step.checksum[:8]}"


def _condition(job: dict[str, Any]) -> tuple[str, str] | None:
    for c in job.get("status", {}).get("conditions", []) or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return c["type"], c.get("message") or c.get("reason", "")
    return None


@dataclass
class KubernetesJobRunner:
    """Runs job steps through the cells' Kubernetes targets."""

    clients: ClientCache
    poll_seconds: float = 0.5
    sleep: Callable[[float], None] = time.sleep

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

    def _wait(self, kube: KubeClient, path: str, name: str, timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = kube.get(path)
            done = _condition(job) if job else None
            if done and done[0] == "Complete":
                return
            if done:
                raise PermanentError(f"job {name} failed: {done[1]}")
            self.sleep(self.poll_seconds)
        raise TemporaryError(f"job {name} not finished after {timeout}s", 10.0)

    def run(self, desired: DesiredState, cell: Cell, migration: Migration,
            step: StepTexts) -> str:
        name = job_name(migration, step)
        kube = self.clients.for_cell(cell)
        ns = cell.kubernetes.namespace
        ensure_namespace(kube, ns)
        path = f"/apis/batch/v1/namespaces/{ns}/jobs/{name}"
        if kube.get(path) is None:
            apply_object(kube, self._render(desired, cell, migration, step, name))
        self._wait(kube, path, name, step.timeout_seconds)
        return name
