"""Kubernetes Jobs run to completion in a cell's namespace.

Owns: creating a Job once under the name it is given (a re-run after a crash finds the
same Job instead of starting a second one) and waiting until it is Complete (done) or
Failed (a ``PermanentError`` with the Job's reason); a timeout is a ``TemporaryError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.kubernetes.apply import apply_object, ensure_namespace
from reconciler.adapters.kubernetes.client import ClientCache, KubeClient
from reconciler.core.model import Cell


def _condition(job: dict[str, Any]) -> tuple[str, str] | None:
    for c in job.get("status", {}).get("conditions", []) or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return c["type"], c.get("message") or c.get("reason", "")
    return None


@dataclass
class KubernetesJobs:
    """Runs Jobs through the cells' Kubernetes targets."""

    clients: ClientCache
    poll_seconds: float = 0.5
    sleep: Callable[[float], None] = time.sleep

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

    def run_to_completion(self, cell: Cell, job: dict[str, Any], timeout: int) -> str:
        """Create ``job`` (named, in the cell's namespace) unless it exists; wait for it."""
        name, ns = job["metadata"]["name"], cell.kubernetes.namespace
        kube = self.clients.for_cell(cell)
        ensure_namespace(kube, ns)
        path = f"/apis/batch/v1/namespaces/{ns}/jobs/{name}"
        if kube.get(path) is None:
            apply_object(kube, job)
        self._wait(kube, path, name, timeout)
        return str(name)
