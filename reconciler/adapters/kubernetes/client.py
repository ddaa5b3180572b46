"""One cluster connection: kubeconfig/context loading, JSON requests, watch streams.

Owns: building the official client's configuration for a cell's target (kubeconfig
file + context, or in-cluster), raw REST calls through its transport (so any kind can
be applied), kind-to-resource discovery, and error translation. One client per
(kubeconfig, context), shared through ``ClientCache``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import urllib3

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.errors import NotFound, from_status, from_transport
from reconciler.adapters.kubernetes.ratelimit import TokenBucket
from reconciler.core.model import Cell

if TYPE_CHECKING:
    from kubernetes import client as k8s_client

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
@cache
def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a call raises when the transport failed. The kubernetes package is imported
    on first use, not with this module: commands that never call a cluster (``validate``,
    ``diff``) would pay about half a second for it."""
    from kubernetes.client.exceptions import ApiException
    return (urllib3.exceptions.HTTPError, OSError, ApiException)


@dataclass(frozen=True)
class Target:
    """Which cluster: a kubeconfig file and context (both None: in-cluster/default)."""

    kubeconfig: str | None = None
    context: str | None = None

    @staticmethod
    def of(cell: Cell) -> Target:
        return Target(cell.kubernetes.kubeconfig, cell.kubernetes.context)


@dataclass(frozen=True)
class Resource:
    """A discovered API resource: its URL prefix, plural name and scope."""

    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool

    def collection(self, namespace: str | None) -> str:
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{self.prefix}{ns}/{self.plural}"

    def item(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


def kubeconfig_used(target: Target) -> str:
    """Which kubeconfig ``target`` reads, as a message names it: the cell's file, else
    ``$KUBECONFIG`` (the client library honours it), else ``~/.kube/config``."""
    if target.kubeconfig:
        return target.kubeconfig
    env = os.environ.get("KUBECONFIG")
    return f"{env} (from $KUBECONFIG)" if env else "~/.kube/config"


def load_configuration(target: Target) -> k8s_client.Configuration:
    """The client configuration for ``target``; PermanentError when none can be loaded."""
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException
    cfg = k8s_client.Configuration()
    try:
        if target.kubeconfig is None and target.context is None:
            try:
                k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=cfg)
                return cfg
            except ConfigException:
                pass
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=target.kubeconfig, context=target.context,
            client_configuration=cfg, persist_config=False)
    except (ConfigException, OSError, ValueError) as e:
        raise PermanentError(f"kubeconfig {kubeconfig_used(target)} "
                             f"context {target.context or '(current)'}: {e}") from e
    cfg.retries = False
    cfg.connection_pool_maxsize = 64
    return cfg


class WriteMarks(Protocol):
    """Told of every successful write's answer (``informer.WatchCache``)."""

    def wrote(self, target: Target, answer: Mapping[str, Any]) -> None: ...


class KubeClient:
    """JSON REST calls and watches against one cluster."""

    def __init__(self, target: Target, timeout: float = 15.0,
                 limiter: TokenBucket | None = None, marks: WriteMarks | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self.limiter = limiter
        self.marks = marks
        from kubernetes import client as k8s_client
        self.api = k8s_client.ApiClient(load_configuration(target))
        self._resources: dict[tuple[str, str], Resource] = {}
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The API server and the kubeconfig and context naming it (for messages)."""
        return (f"{self.api.configuration.host} (kubeconfig {kubeconfig_used(self.target)}, "
                f"context {self.target.context or '(current)'})")

    def _send(self, method: str, path: str, query: Mapping[str, Any] | None, body: Any,
              content_type: str, timeout: Any) -> Any:
        m, url, headers, data, _ = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()) or None,
            header_params={"Content-Type": content_type, "Accept": JSON},
            body=body, auth_settings=["BearerToken"])
        if self.limiter is not None:
            self.limiter.take()
        try:
            return self.api.call_api(m, url, headers, data, _request_timeout=timeout)
        except _transport_errors() as e:
            raise from_transport(e, f"{method} {path} on {self.where}") from e

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None,
             body: Any = None, content_type: str = JSON) -> tuple[int, dict[str, Any]]:
        """One call; the HTTP status and decoded JSON answer, or an adapter error."""
        resp = self._send(method, path, query, body, content_type, self.timeout)
        try:
            data = resp.read()
        except _transport_errors() as e:
            raise from_transport(e, f"{method} {path}") from e
        if resp.status >= 400:
            raise from_status(resp.status, data, resp.headers, f"{method} {path}")
        answer = dict(json.loads(data)) if data else {}
        if self.marks is not None and method != "GET":
            self.marks.wrote(self.target, answer)
        return int(resp.status), answer

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = JSON) -> dict[str, Any]:
        """One call; the decoded JSON answer, or an adapter error."""
        return self.call(method, path, query, body, content_type)[1]

    def get(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when it does not exist."""
        try:
            return self.request("GET", path)
        except NotFound:
            return None

    def stream(self, path: str, query: Mapping[str, Any], seconds: int) -> Iterator[Any]:
        """Open a watch; yields the raw response first (to allow closing), then events."""
        q = {**query, "watch": "true", "timeoutSeconds": str(seconds),
             "allowWatchBookmarks": "true"}
        resp = self._send("GET", path, q, None, JSON, (5.0, seconds + 10.0))
        if resp.status >= 400:
            raise from_status(resp.status, resp.read(), resp.headers, f"WATCH {path}")
        yield resp.response
        buf = b""
        try:
            for chunk in resp.response.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except _transport_errors() as e:
            raise from_transport(e, f"WATCH {path}") from e
        finally:
            resp.response.release_conn()

    # -- discovery

    def resource(self, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` in ``api_version`` (discovered once)."""
        key = (api_version, kind)
        with self._lock:
            found = self._resources.get(key)
        if found is not None:
            return found
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        listing = self.request("GET", prefix)
        for r in listing.get("resources", []):
            if r.get("kind") == kind and "/" not in r.get("name", "/"):
                res = Resource(prefix, r["name"], bool(r.get("namespaced")))
                with self._lock:
                    self._resources[key] = res
                return res
        raise PermanentError(f"kind {kind} is not served by {api_version}")


class ClientCache:
    """One KubeClient per target, created on first use; each sends at most ``qps``
    requests per second after a ``burst`` (qps 0: unlimited), and tells ``marks`` of
    every write's answer."""

    def __init__(self, qps: float = 0.0, burst: int = 1,
                 marks: WriteMarks | None = None) -> None:
        self._clients: dict[Target, KubeClient] = {}
        self._lock = threading.Lock()
        self.qps, self.burst = qps, burst
        self.marks = marks

    def for_target(self, target: Target) -> KubeClient:
        with self._lock:
            if target not in self._clients:
                limiter = TokenBucket(self.qps, self.burst) if self.qps > 0 else None
                self._clients[target] = KubeClient(target, limiter=limiter, marks=self.marks)
            return self._clients[target]

    def for_cell(self, cell: Cell) -> KubeClient:
        return self.for_target(Target.of(cell))
