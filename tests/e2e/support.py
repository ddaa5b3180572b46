"""Assembling a Reconciler over the e2e fleet exactly as the daemon does, and reading
the results back from the real parts."""

from __future__ import annotations

from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.kubernetes.snapshot import read_fleet
from reconciler.adapters.migrations.report import read_phases
from reconciler.compose.reconciler import LocalSettings, local_reconciler
from reconciler.core.loader import load_repository
from reconciler.engine.tick import Reconciler
from tests.e2e.conftest import Fleet


def build_reconciler(fleet: Fleet) -> Reconciler:
    return local_reconciler(LocalSettings(
        repo=fleet.repo, state_dir=fleet.state, prometheus_url=fleet.prom.url,
        git_author=("reconciler", "reconciler@e2e.example"),
        terraform_cli_config=fleet.terraform_cli_config))


def live_versions(fleet: Fleet) -> dict[str, tuple[str | None, str]]:
    result = load_repository(DirectorySource(fleet.repo))
    assert result.desired is not None
    services = read_fleet(result.desired)
    return {cell: (str(s["shop"].version) if s["shop"].version else None, s["shop"].health)
            for cell, s in services.items()}


def migration_phase(fleet: Fleet, cell: str) -> str | None:
    result = load_repository(DirectorySource(fleet.repo))
    assert result.desired is not None
    ref = result.desired.cells[cell].databases[0]
    phases = read_phases(cell, ref)
    return phases["0001-currency"].phase if "0001-currency" in phases else None


def config_value(fleet: Fleet, cell: str, key: str) -> str:
    """A key of the shop ConfigMap in the cell's namespace, read with kubectl."""
    result = load_repository(DirectorySource(fleet.repo))
    assert result.desired is not None
    ns = result.desired.cells[cell].kubernetes.namespace
    return fleet.plane.kubectl("get", "configmap", "shop-config", "-n", ns,
                               "-o", f"jsonpath={{.data.{key}}}").strip()
