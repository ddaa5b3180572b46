"""Prometheus HTTP API adapter: evaluates alarm rules per cell.

Owns: range queries against ``/api/v1/query_range`` and turning their answers (or
failures) into samples, ``TemporaryError`` (unreachable, 5xx, 429) or ``PermanentError``
(a bad query). The judgement of a sample is ``reconciler.core.alarms``.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.core import analysis
from reconciler.core.alarms import judge, render_query
from reconciler.core.live import AlarmState, ServiceLive
from reconciler.core.model import AlarmRule, Cell, DesiredState


class PrometheusClient:
    """A minimal client for the Prometheus query API."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = _error_text(e)
            if e.code in (400, 422):
                raise PermanentError(f"prometheus rejected the query: {detail}") from None
            raise TemporaryError(f"prometheus answered {e.code}: {detail}", 5.0) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise TemporaryError(f"prometheus unreachable at {self.base_url}: {reason}",
                                 5.0) from None
        if body.get("status") != "success":
            raise PermanentError(f"prometheus query failed: {body.get('error', body)}")
        return body["data"]

    def _post(self, path: str, params: dict[str, str]) -> Any:
        """A query sent as a form (queries over many cells outgrow a URL)."""
        req = urllib.request.Request(
            f"{self.base_url}{path}", data=urllib.parse.urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = _error_text(e)
            if e.code in (400, 422):
                raise PermanentError(f"prometheus rejected the query: {detail}") from None
            raise TemporaryError(f"prometheus answered {e.code}: {detail}", 5.0) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise TemporaryError(f"prometheus unreachable at {self.base_url}: {reason}",
                                 5.0) from None
        if body.get("status") != "success":
            raise PermanentError(f"prometheus query failed: {body.get('error', body)}")
        return body["data"]

    def series(self, query: str, window_seconds: int,
               step_seconds: float) -> list[tuple[float, float]]:
        """(unix time, value) of a single-series query over the last ``window_seconds``
        (NaN and infinities dropped; an empty answer is an empty series)."""
        end = time.time()
        data = self._post("/api/v1/query_range", {
            "query": query, "start": f"{end - window_seconds:.3f}", "end": f"{end:.3f}",
            "step": f"{step_seconds:g}"})
        result = data.get("result", [])
        if not result:
            return []
        points = [(float(t), float(v)) for t, v in result[0]["values"]]
        return [(t, v) for t, v in points if math.isfinite(v)]

    def samples(self, query: str, window_seconds: int, step_seconds: int = 1) -> list[float]:
        """Values of a single-series query over the last ``window_seconds`` (NaN dropped)."""
        end = time.time()
        data = self._get("/api/v1/query_range", {
            "query": query, "start": f"{end - window_seconds:.3f}", "end": f"{end:.3f}",
            "step": str(step_seconds)})
        result = data.get("result", [])
        if not result:
            return []
        values = [float(v) for _, v in result[0]["values"]]
        return [v for v in values if not math.isnan(v)]

    def ready(self) -> bool:
        """Whether the server answers its readiness endpoint."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready",
                                        timeout=self.timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read()).get("error", e.reason))
    except (ValueError, OSError):
        return str(e.reason)


#: Queries in flight at once while evaluating (a thousand cells' rules one after the
#: other took 2.5 s of every tick).
QUERIES_AT_ONCE = 8


def evaluate(client: PrometheusClient, rules: Iterable[AlarmRule], cells: Iterable[Cell],
             wave: str = "", step_seconds: int = 1) -> list[AlarmState]:
    """Every rule for every cell, as alarm states for the live snapshot (in cell, rule
    order; queried ``QUERIES_AT_ONCE`` at a time; the first error is raised)."""
    rule_list = tuple(rules)
    pairs = [(cell, rule) for cell in cells for rule in rule_list if not rule.baseline]

    def one(pair: tuple[Cell, AlarmRule]) -> AlarmState:
        cell, rule = pair
        query = render_query(rule, cell, wave)
        return judge(rule, cell.name, client.samples(query, rule.window_seconds, step_seconds))

    if len(pairs) <= 1:
        return [one(p) for p in pairs]
    with ThreadPoolExecutor(max_workers=min(QUERIES_AT_ONCE, len(pairs))) as pool:
        return list(pool.map(one, pairs))


def analyse(client: PrometheusClient, desired: DesiredState,
            services: Mapping[str, Mapping[str, ServiceLive]],
            step_seconds: int = 1) -> tuple[AlarmState, ...]:
    """Every baseline comparison (``reconciler.core.analysis``): both sides queried over
    the rule's window, judged, one state per (rule, canary cell)."""
    states: list[AlarmState] = []
    for rule, service in analysis.baseline_rules(desired):
        for cmp in analysis.comparisons(rule, service, desired, services):
            canary = client.samples(analysis.render(cmp, cmp.canary), rule.window_seconds,
                                    step_seconds)
            baseline = client.samples(analysis.render(cmp, cmp.baseline), rule.window_seconds,
                                      step_seconds)
            states += analysis.judge(cmp, canary, baseline)
    return analysis.merge(states)
