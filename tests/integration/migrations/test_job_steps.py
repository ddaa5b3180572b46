"""`job` migration steps: a Kubernetes Job on the local control plane (KWOK completes or
fails the Job's pod by label), recorded in the real PostgreSQL ledger."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.client import ClientCache
from reconciler.adapters.kubernetes.jobs import KubernetesJobs
from reconciler.adapters.migrations import run_phase
from reconciler.adapters.migrations.job_runner import MigrationJobRunner
from reconciler.core.model import DesiredState, KubernetesTarget, Migration, MigrationStep
from reconciler.localparts.k8s import ControlPlane
from reconciler.testing.k8s import control_plane_fixture

from .conftest import CELLS, Fleet, sql_migration


def job_migration(mid: str) -> Migration:
    base = sql_migration(mid, ["unused.sql"])
    return dataclasses.replace(base, expand=MigrationStep("job", job="m/job.yaml",
                                                          timeout_seconds=60))

pytestmark = [pytest.mark.postgres, pytest.mark.k8s]
jobs_cluster = control_plane_fixture("jobs")

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: placeholder
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        reconciler.dev/test-fail: "{fail}"
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: "registry.local/migrate:{{{{ version }}}}"
"""


def _on_cluster(desired: DesiredState, plane: ControlPlane) -> DesiredState:
    cells = {n: dataclasses.replace(c, kubernetes=KubernetesTarget(
        f"jobs-{n}", plane.context, str(plane.kubeconfig))) for n, c in desired.cells.items()}
    return dataclasses.replace(desired, cells=cells)


def test_job_step_completes_and_is_recorded(fleet: Fleet, jobs_cluster: ControlPlane) -> None:
    files = {"m/job.yaml": JOB.format(fail="false")}
    desired = _on_cluster(fleet.with_files(files, job_migration("0020-job")), jobs_cluster)
    runner = MigrationJobRunner(KubernetesJobs(ClientCache()))
    result = run_phase(desired, CELLS[0], "0020-job", "expand", env=fleet.env, jobs=runner)
    assert result.outcome == "applied" and result.detail.startswith("job migrate-0020-job")
    assert fleet.ledger(CELLS[0]) == ["0020-job:expanded"]
    again = run_phase(desired, CELLS[0], "0020-job", "expand", env=fleet.env, jobs=runner)
    assert again.outcome == "unchanged"


def test_failing_job_is_permanent_and_not_recorded(fleet: Fleet,
                                                   jobs_cluster: ControlPlane) -> None:
    files = {"m/job.yaml": JOB.format(fail="true")}
    desired = _on_cluster(fleet.with_files(files, job_migration("0021-job")), jobs_cluster)
    runner = MigrationJobRunner(KubernetesJobs(ClientCache()))
    with pytest.raises(PermanentError, match="failed"):
        run_phase(desired, CELLS[1], "0021-job", "expand", env=fleet.env, jobs=runner)
    assert fleet.ledger(CELLS[1]) == []
