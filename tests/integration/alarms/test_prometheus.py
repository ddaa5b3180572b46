"""Alarm rules evaluated against a real Prometheus scraping a test exporter."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.prometheus import PrometheusClient, evaluate
from reconciler.core.live import AlarmState
from reconciler.core.model import AlarmRule, Cell, KubernetesTarget, SourceRef, frozen_map
from reconciler.localparts.prometheus import (
    PrometheusServer,
    TestExporter,
    free_port,
    prometheus_binary,
    prometheus_with_exporter,
)

pytestmark = pytest.mark.alarms

RULE = AlarmRule(
    name="error-rate",
    query='sum(rate(http_requests_total{cell="{{ cell.name }}",code=~"5.."}[4s])) / '
          'sum(rate(http_requests_total{cell="{{ cell.name }}"}[4s]))',
    threshold=0.05, comparison=">", min_samples=3, window_seconds=6)


def cell(name: str) -> Cell:
    return Cell(name, "canary", "r1", "r1a", 1.0, KubernetesTarget(name), frozen_map(), (),
                SourceRef("cells/x.yaml"))


@pytest.fixture(scope="module")
def prom() -> Iterator[tuple[PrometheusServer, TestExporter]]:
    if prometheus_binary() is None:
        msg = "prometheus is not installed (apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    with prometheus_with_exporter(["good", "bad"]) as pair:
        yield pair


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


def test_breach_fires_only_for_the_bad_cell(prom: tuple[PrometheusServer, TestExporter]) -> None:
    server, exporter = prom
    exporter.set_error_rate("bad", 0.4)
    client = PrometheusClient(server.url)
    states: dict[str, AlarmState] = {}

    def fired() -> bool:
        for s in evaluate(client, [RULE], [cell("good"), cell("bad")]):
            states[s.cell] = s
        return states["bad"].firing

    _wait_for(fired)
    bad, good = states["bad"], states["good"]
    assert bad.value is not None and bad.value > 0.3
    assert bad.samples >= 3
    assert good.firing is False
    exporter.set_error_rate("bad", 0.0)
    _wait_for(lambda: not evaluate(client, [RULE], [cell("bad")])[0].firing)


def test_too_few_samples_never_fire(prom: tuple[PrometheusServer, TestExporter]) -> None:
    server, exporter = prom
    exporter.set_error_rate("bad", 0.9)
    strict = AlarmRule(RULE.name, RULE.query, RULE.threshold, ">", min_samples=10_000,
                       window_seconds=6)
    _wait_for(lambda: evaluate(PrometheusClient(server.url), [RULE], [cell("bad")])[0].firing)
    state = evaluate(PrometheusClient(server.url), [strict], [cell("bad")])[0]
    assert state.firing is False and 0 < state.samples < 10_000
    exporter.set_error_rate("bad", 0.0)


def test_bad_query_is_permanent(prom: tuple[PrometheusServer, TestExporter]) -> None:
    server, _ = prom
    with pytest.raises(PermanentError, match="rejected the query"):
        PrometheusClient(server.url).samples("sum(rate(", 10)


def test_unreachable_server_is_temporary() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(TemporaryError, match="unreachable"):
        client.samples("up", 10)
