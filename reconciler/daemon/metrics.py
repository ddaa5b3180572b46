"""The daemon's Prometheus metrics, in a registry of its own.

Owns: the metric names and labels served on ``/metrics``: reconcile duration, the last
applied revision, drift events, rollbacks, Git fetch errors, wave progress, webhook
deliveries and unpushed commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from reconciler.core.plan import Plan
from reconciler.core.shards import ShardMap

WAVE_STATES = ("pending", "in-progress", "baking", "done", "held", "rolling-back", "failed")


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.reconcile_seconds = Histogram(
            "reconciler_reconcile_duration_seconds", "Duration of one reconcile tick",
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.revision = Info("reconciler_last_applied_revision",
                             "The desired revision of the last reconcile", registry=r)
        self.drift = Counter("reconciler_drift_events_total", "Drift seen in live objects",
                             ["cell", "service"], registry=r)
        self.terraform_drift = Gauge("reconciler_terraform_drifted_stacks",
                                     "Stacks the last Terraform drift check found drifted",
                                     registry=r)
        self.rollbacks = Counter("reconciler_rollbacks_total", "Automatic rollbacks started",
                                 ["service", "wave"], registry=r)
        self.fetch_errors = Counter("reconciler_git_fetch_errors_total",
                                    "Failed fetches of the desired-state repository",
                                    registry=r)
        self.push_errors = Counter("reconciler_git_push_errors_total",
                                   "Failed pushes of status and revert commits", registry=r)
        self.pending_commits = Gauge("reconciler_git_unpushed_commits",
                                     "Commits waiting to be pushed", registry=r)
        self.invalid = Gauge("reconciler_desired_state_invalid",
                             "1 while the newest revision is rejected", registry=r)
        self.webhooks = Counter("reconciler_webhook_requests_total", "Webhook deliveries",
                                ["result"], registry=r)
        self.waves = Gauge("reconciler_wave_state", "1 for the state each wave is in",
                           ["service", "wave", "state"], registry=r)
        self.wave_cells_done = Gauge("reconciler_wave_cells_at_target",
                                     "Cells of a wave on their target version",
                                     ["service", "wave"], registry=r)

        self.shard_holder = Gauge("reconciler_shard_holder",
                                  "1 for the replica holding each shard's Lease (sharded "
                                  "replicas)", ["shard", "replica"], registry=r)
        self.shard_cells = Gauge("reconciler_shard_cells",
                                 "Cells each replica runs (sharded replicas)", ["replica"],
                                 registry=r)

    def observe_shards(self, shards: ShardMap, cells: Iterable[str]) -> None:
        """The shard map as this replica last read it."""
        self.shard_holder.clear()
        self.shard_cells.clear()
        for i, replica in sorted(shards.holders.items()):
            self.shard_holder.labels(str(i), replica).set(1)
        counts = dict.fromkeys(shards.replicas(), 0)
        for replica in shards.owners(cells).values():
            counts[replica] += 1
        for replica, n in counts.items():
            self.shard_cells.labels(replica).set(n)

    def observe_plan(self, plan: Plan) -> None:
        """Per-wave progress gauges from a plan."""
        for w in plan.waves:
            for state in WAVE_STATES:
                self.waves.labels(w.service, w.wave, state).set(1 if w.state == state else 0)
            done = sum(1 for c in w.cells if c.live_version == c.target_version)
            self.wave_cells_done.labels(w.service, w.wave).set(done)

    def count_drift(self, drifted: Iterable[tuple[str, str]]) -> None:
        for cell, service in drifted:
            self.drift.labels(cell, service).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
