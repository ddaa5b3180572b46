"""Prometheus HTTP API adapter: evaluates alarm rules per cell.

Owns: range queries against ``/api/v1/query_range`` and turning their answers (or
failures) into samples, ``TemporaryError`` (unreachable, 5xx, 429) or ``PermanentError``
(a bad query). The judgement of a sample is ``reconciler.core.alarms``.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.adapters.errors import PermanentError, TemporaryError
from reconciler.core import analysis
from reconciler.core.alarms import judge, render_query
from reconciler.core.live import AlarmState, ServiceLive
from reconciler.core.model import AlarmRule, Cell, DesiredState


class PrometheusClient:
    """A minimal client for the Prometheus query API. Each thread keeps its own HTTP
    connection open between queries (a thousand cells' queries a tick no longer open a
    thousand connections, each resolving the host first)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        parts = urllib.parse.urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._prefix = parts.path
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, timeout=self.timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[int, bytes, str]:
        """(status, body, reason); a kept connection the server closed meanwhile is
        opened again once."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, f"{self._prefix}{path}", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError, http.client.CannotSendRequest) as e:
                self._drop()
                if attempt == 2:
                    raise TemporaryError(f"prometheus unreachable at {self.base_url}: {e}",
                                         5.0) from None
                continue
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise TemporaryError(f"prometheus unreachable at {self.base_url}: {e}",
                                     5.0) from None
            if resp.will_close:
                self._drop()
            return resp.status, data, resp.reason
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, params: dict[str, str]) -> Any:
        query = urllib.parse.urlencode(params)
        if method == "GET":
            status, data, reason = self._send("GET", f"{path}?{query}", None, {})
        else:  # a query sent as a form (queries over many cells outgrow a URL)
            status, data, reason = self._send(
                "POST", path, query.encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            detail = _error_text(data, reason)
            if status in (400, 422):
                raise PermanentError(f"prometheus rejected the query: {detail}")
            raise TemporaryError(f"prometheus answered {status}: {detail}", 5.0)
        try:
            body = json.loads(data)
        except ValueError:
            raise TemporaryError(f"prometheus at {self.base_url} answered no JSON",
                                 5.0) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", body) if isinstance(body, dict) else body
            raise PermanentError(f"prometheus query failed: {error}")
        return body["data"]

    def _get(self, path: str, params: dict[str, str]) -> Any:
        return self._call("GET", path, params)

    def _post(self, path: str, params: dict[str, str]) -> Any:
        return self._call("POST", path, params)

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
        return _numbers(result[0]["values"])

    def samples_many(self, queries: Sequence[str], window_seconds: int,
                     step_seconds: int = 1) -> list[list[float]]:
        """``samples`` of each query, sent as one request: each query, in parentheses,
        tagged by its position with ``label_replace`` and joined with ``or`` (every
        series keeps the labels it had, plus the tag). A query that is not
        self-contained (unbalanced brackets or quotes) is sent alone, so it can never
        join its neighbours; a batch Prometheus rejects (a query that is not an instant
        vector, or not valid) is sent again one query at a time, so each answer and
        each error is what that query alone gives."""
        batched = [i for i, q in enumerate(queries) if _self_contained(q)]
        out: list[list[float] | None] = [None] * len(queries)
        if len(batched) > 1:
            joined = " or ".join(f'label_replace((\n{queries[i]}\n), "{TAG}", "{n}", "", "")'
                                 for n, i in enumerate(batched))
            end = time.time()
            try:
                data = self._post("/api/v1/query_range", {
                    "query": joined, "start": f"{end - window_seconds:.3f}",
                    "end": f"{end:.3f}", "step": str(step_seconds)})
            except PermanentError:
                pass  # one query's fault: each alone below, for its own answer or error
            else:
                firsts: dict[str, list[Any]] = {}
                for series in data.get("result", []):
                    firsts.setdefault(str(series.get("metric", {}).get(TAG)),
                                      series.get("values", []))
                for n, i in enumerate(batched):
                    out[i] = _numbers(firsts.get(str(n), []))
        return [got if got is not None else self.samples(q, window_seconds, step_seconds)
                for q, got in zip(queries, out, strict=True)]

    def ready(self) -> bool:
        """Whether the server answers its readiness endpoint."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready",
                                        timeout=self.timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return False


#: The label that tags each query's series in a batch (``samples_many``).
TAG = "reconciler_query"


def _numbers(values: Iterable[Any]) -> list[float]:
    """A range query's ``[time, "value"]`` pairs as floats, NaN dropped."""
    out = [float(v) for _, v in values]
    return [v for v in out if not math.isnan(v)]


_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _self_contained(query: str) -> bool:
    """Whether ``query`` is balanced: every bracket closed in order, every string
    closed; ``#`` comments run to the end of a line. Wrapped in parentheses on lines
    of its own, such a query is one group that cannot reach into its neighbours."""
    stack: list[str] = []
    quote = ""
    i = 0
    while i < len(query):
        ch = query[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "#":
            end = query.find("\n", i)
            i = len(query) if end < 0 else end
        elif ch in _CLOSE:
            stack.append(_CLOSE[ch])
        elif ch in ")]}" and (not stack or stack.pop() != ch):
            return False
        i += 1
    return not stack and not quote


def _error_text(data: bytes, reason: str) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return reason
    return str(body.get("error", reason)) if isinstance(body, dict) else reason


#: Requests in flight at once while evaluating (a thousand cells' rules one after the
#: other took 2.5 s of every tick).
QUERIES_AT_ONCE = 8
#: Queries sent in one request (``samples_many``): a thousand cells' rules were a
#: thousand requests a tick, most of the tick's time once Kubernetes came from its watch.
QUERIES_PER_REQUEST = 100


def evaluate(client: PrometheusClient, rules: Iterable[AlarmRule], cells: Iterable[Cell],
             wave: str = "", step_seconds: int = 1) -> list[AlarmState]:
    """Every rule for every cell, as alarm states for the live snapshot (in cell, rule
    order; each rule's queries ``QUERIES_PER_REQUEST`` to a request, ``QUERIES_AT_ONCE``
    requests at a time; the first error is raised)."""
    rule_list = tuple(rules)
    pairs = [(cell, rule) for cell in cells for rule in rule_list if not rule.baseline]
    batches: list[list[int]] = []
    for rule in rule_list:
        mine = [i for i, (_, r) in enumerate(pairs) if r is rule]
        batches += [mine[k:k + QUERIES_PER_REQUEST]
                    for k in range(0, len(mine), QUERIES_PER_REQUEST)]

    def one(batch: list[int]) -> list[AlarmState]:
        rule = pairs[batch[0]][1]
        queries = [render_query(rule, pairs[i][0], wave) for i in batch]
        answers = client.samples_many(queries, rule.window_seconds, step_seconds)
        return [judge(rule, pairs[i][0].name, a) for i, a in zip(batch, answers, strict=True)]

    states: list[AlarmState | None] = [None] * len(pairs)
    with ThreadPoolExecutor(max_workers=max(1, min(QUERIES_AT_ONCE, len(batches)))) as pool:
        for batch, judged in zip(batches, pool.map(one, batches), strict=True):
            for i, state in zip(batch, judged, strict=True):
                states[i] = state
    return [s for s in states if s is not None]


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
