"""Alarm rules evaluated against a real Prometheus scraping a test exporter."""

from __future__ import annotations

import dataclasses
import http.client
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.adapters.prometheus import PrometheusClient, evaluate
from reconciler.compose.wiring import ALARM_REUSE_SECONDS, AlarmEvaluator
from reconciler.core import analysis
from reconciler.core.live import AlarmState
from reconciler.core.model import AlarmRule, Cell, KubernetesTarget, SourceRef, frozen_map
from reconciler.core.versions import Version
from reconciler.localparts.prometheus import (
    PrometheusServer,
    TestExporter,
    free_port,
    prometheus_binary,
    prometheus_with_exporter,
)
from tests.engine.support import desired as engine_desired

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


def test_queries_reuse_one_connection_per_thread_and_reopen_a_closed_one(
        prom: tuple[PrometheusServer, TestExporter], monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = prom
    opened: list[int] = []
    real_connect = http.client.HTTPConnection.connect

    def counting(conn: http.client.HTTPConnection) -> None:
        opened.append(1)
        real_connect(conn)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting)
    client = PrometheusClient(server.url)
    for _ in range(20):
        assert client.samples("vector(1)", 4) == [1.0] * 5
    assert len(opened) == 1
    conn = client._local.conn
    assert conn is not None and conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle connection
    assert client.samples("vector(2)", 4) == [2.0] * 5
    assert len(opened) == 2
    with pytest.raises(PermanentError, match="rejected the query"):  # errors as before
        client.samples("sum(rate(", 10)
    assert client.samples("vector(3)", 2)[0] == 3.0


P95 = AlarmRule(
    name="p95-ratio", compare="baseline", max_ratio=2.0, min_samples=3, window_seconds=6,
    threshold=0.0,
    query='histogram_quantile(0.95, sum by (le) (rate(app_request_duration_seconds_bucket'
          '{cell=~"{{ cells }}",version="{{ version }}"}[4s])))')


def test_baseline_p95_latency_on_real_promql(
        prom: tuple[PrometheusServer, TestExporter]) -> None:
    """A version whose p95 latency is over twice the baseline's fires; the same query on
    an equally fast version passes (per-version histograms, real histogram_quantile)."""
    server, exporter = prom
    client = PrometheusClient(server.url)
    exporter.set_version("good", "1.0.0")
    exporter.set_version("bad", "2.0.0")
    exporter.set_version_latency("2.0.0", 0.2)  # baseline: the default 0.02 s
    cmp = analysis.Comparison(P95, "shop", "region r1",
                              analysis.Side(Version.parse("2.0.0"), ("bad",)),
                              analysis.Side(Version.parse("1.0.0"), ("good",)))
    seen: list[AlarmState] = []

    def judged() -> bool:
        canary = client.samples(analysis.render(cmp, cmp.canary), 6)
        baseline = client.samples(analysis.render(cmp, cmp.baseline), 6)
        seen[:] = analysis.judge(cmp, canary, baseline)
        return not seen[0].pending

    try:
        _wait_for(judged)
        assert seen[0].firing, seen[0].detail
        assert seen[0].value is not None and seen[0].value > 2.0
        assert "ratio" in seen[0].detail and "> maxRatio 2" in seen[0].detail
        exporter.set_version_latency("2.0.0", None)
        _wait_for(lambda: judged() and not seen[0].firing)
        assert "<= maxRatio 2" in seen[0].detail
    finally:
        exporter.set_version("good", None)
        exporter.set_version("bad", None)
        exporter.set_version_latency("2.0.0", None)


TWO = ('label_replace(vector(3), "a", "x", "", "") or '
       'label_replace(vector(4), "a", "y", "", "")')  # two series: {a="x"} sorts first


@pytest.mark.parametrize("queries", [
    ["vector(1)", "vector(2)", TWO, "nothing_is_named_this", "vector(5) # a comment (",
     'count(up{job=~".*[)]"}) or vector(6)'],
    ["vector(1)", "scalar(vector(7))"],      # a scalar cannot be tagged: each alone
    ["vector(8)"],
    [],
])
def test_queries_sent_together_answer_as_each_alone(
        prom: tuple[PrometheusServer, TestExporter], queries: list[str]) -> None:
    client = PrometheusClient(prom[0].url)
    assert client.samples_many(queries, 6) == [client.samples(q, 6) for q in queries]


@pytest.mark.parametrize(("queries", "error"), [
    (["vector(1)", "sum(rate("], "rejected the query"),               # unbalanced: alone
    (["vector(1)", "no_such_function(up)"], "rejected the query"),    # balanced, invalid
    # invalid alone; joined with its neighbour it would parse: never joined
    (["vector(1)", "vector(2)) or (vector(9)"], "rejected the query"),
])
def test_a_bad_query_among_others_fails_as_it_does_alone(
        prom: tuple[PrometheusServer, TestExporter], queries: list[str], error: str) -> None:
    client = PrometheusClient(prom[0].url)
    with pytest.raises(PermanentError, match=error):
        client.samples(queries[-1], 6)
    with pytest.raises(PermanentError, match=error):
        client.samples_many(queries, 6)


def _counting(client: PrometheusClient, monkeypatch: pytest.MonkeyPatch
              ) -> tuple[PrometheusClient, list[str]]:
    """``client``, and the list of the requests it sends from now on (their methods)."""
    sent: list[str] = []
    real = client._call

    def counting(method: str, path: str, params: dict[str, str]) -> object:
        sent.append(method)
        return real(method, path, params)

    monkeypatch.setattr(client, "_call", counting)
    return client, sent


def test_a_fleet_s_alarms_take_a_request_per_hundred_cells(
        prom: tuple[PrometheusServer, TestExporter], monkeypatch: pytest.MonkeyPatch) -> None:
    server, exporter = prom
    exporter.set_error_rate("bad", 0.4)
    client, sent = _counting(PrometheusClient(server.url), monkeypatch)
    cells = [cell(f"c{i:03d}") for i in range(248)] + [cell("good"), cell("bad")]
    _wait_for(lambda: evaluate(client, [RULE], [cell("bad")])[0].firing)
    sent.clear()
    states = evaluate(client, [RULE], cells)
    assert len(sent) == 3, "250 cells' queries in 3 requests"
    assert [s.cell for s in states] == [c.name for c in cells]
    assert [s.cell for s in states if s.firing] == ["bad"]
    alone = {c.name: evaluate(client, [RULE], [c])[0] for c in (cell("good"), cell("c000"))}
    assert states[-2].firing is alone["good"].firing is False
    assert states[0] == alone["c000"], "a cell without data: the same state either way"
    exporter.set_error_rate("bad", 0.0)


def test_the_alarms_are_evaluated_once_a_step_for_the_same_rules_and_cells(
        prom: tuple[PrometheusServer, TestExporter], monkeypatch: pytest.MonkeyPatch) -> None:
    server = prom[0]
    client, sent = _counting(PrometheusClient(server.url), monkeypatch)
    now = [100.0]
    evaluator = AlarmEvaluator(client, clock=lambda: now[0])
    base = engine_desired()
    fleet = dataclasses.replace(base.fleet, alarms=(RULE,))
    desired = dataclasses.replace(base, fleet=fleet)
    first = evaluator.read(desired)
    assert len(sent) == 1 and len(first) == len(desired.cells)
    now[0] += 0.5
    assert evaluator.read(dataclasses.replace(desired, revision="same-content")) == first
    assert len(sent) == 1, "the same rules and cells within the step: no query"
    evaluator.read(dataclasses.replace(desired, fleet=dataclasses.replace(
        fleet, alarms=(dataclasses.replace(RULE, threshold=0.5),))))
    assert len(sent) == 2, "another rule: queried at once"
    now[0] += ALARM_REUSE_SECONDS
    evaluator.read(desired)
    evaluator.read(desired)
    assert len(sent) == 3, "a step later: queried again, once"


@pytest.mark.parametrize("error, printed", [
    (BrokenPipeError(32, "Broken pipe"), False),        # the scraper gave up mid-answer
    (ConnectionResetError(104, "Connection reset"), False),
    (ValueError("a bug in the exporter"), True),          # anything else is still shown
])
def test_the_exporter_is_quiet_only_about_a_scrape_given_up(
        error: Exception, printed: bool, capsys: pytest.CaptureFixture[str]) -> None:
    exporter = TestExporter(["c1"])
    exporter.start()
    try:
        server = exporter._server
        assert server is not None
        try:
            raise error
        except Exception:
            no_request: Any = None  # handle_error does not read it
            server.handle_error(no_request, ("127.0.0.1", 1))
    finally:
        exporter.stop()
    err = capsys.readouterr().err
    assert ("Traceback" in err and str(error) in err) == printed, err
