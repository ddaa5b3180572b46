"""The daemon's configuration file (``--config``) and its command-line overrides.

Owns: the configuration keys, their defaults and their validation. Secrets are never in
the file itself: it names files or environment variables that hold them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.secrets import read_secret
from reconciler.core.durations import seconds
from reconciler.engine.limits import Limits


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why."""


@dataclass(frozen=True)
class RepoConfig:
    url: str = ""
    branch: str = "main"
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    ssh_private_key: str | None = None
    known_hosts: str | None = None
    verify_kind: str | None = None  # ssh | gpg
    allowed_signers: str | None = None
    gpg_home: str | None = None
    fingerprints: tuple[str, ...] = ()
    #: The daemon's SSH private key: its own commits are signed with it (required
    #: whenever ``verify_kind`` is set).
    signing_key: str | None = None


@dataclass(frozen=True)
class LeaderConfig:
    kind: str = "file"  # file | lease | none
    namespace: str = "reconciler-system"
    name: str = "reconciler"
    kubeconfig: str | None = None
    context: str | None = None
    lease_seconds: int = 15


@dataclass(frozen=True)
class ShardConfig:
    """``shards:``: several replicas share the fleet, each running the cells of the
    shards whose Leases it holds (see docs/deploy.md, "Several replicas"). Replaces
    ``leader:`` (every replica works; the holder of the lowest shard runs the
    wave-level steps)."""

    #: How many shards (Leases) the fleet is cut into: at least the replicas you run.
    count: int = 16
    lease_seconds: int = 15
    namespace: str = "reconciler-system"
    #: The Leases' name prefix (``<name>-shard-<i>``, ``<name>-member-<replica>``).
    name: str = "reconciler"
    #: This replica's identity in the Leases (unique per replica; default: the host
    #: name and the process id, the Pod's name in a Deployment).
    replica_id: str = ""
    kubeconfig: str | None = None
    context: str | None = None


#: The canary panel's default queries: ``{{ cells }}`` becomes a regular expression
#: matching the cohort's cell names (the exporter's ``cell`` label, as in the alarm rules);
#: ``requests`` is a sum over the cohort, shown per cell.
DEFAULT_CANARY_QUERIES = {
    "requests": 'sum(rate(http_requests_total{cell=~"{{ cells }}"}[1m]))',
    "errors": 'sum(rate(http_requests_total{cell=~"{{ cells }}",code=~"5.."}[1m])) / '
              'sum(rate(http_requests_total{cell=~"{{ cells }}"}[1m]))',
    "latency": 'histogram_quantile(0.99, sum by (le) '
               '(rate(http_request_duration_seconds_bucket{cell=~"{{ cells }}"}[1m])))',
}


@dataclass(frozen=True)
class DashboardConfig:
    """``dashboard:``: the read-only web dashboard on the daemon's listener.

    On a loopback ``listen`` it is open to local clients (a browser's ``Host`` must be a
    loopback name: no DNS rebinding); listening elsewhere it needs ``token_file`` (a
    bearer token, or the session cookie ``POST /api/session`` sets for it) or
    ``trusted_proxies`` (addresses whose ``user_header`` names an authenticated user),
    and is off without either. A token file always requires the token."""

    enabled: bool = True
    token_file: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    user_header: str = "X-Forwarded-User"
    max_streams: int = 32
    #: A link to a commit in the Git host's web UI, ``{sha}`` replaced (history links).
    commit_url: str | None = None
    canary_window: int = 600
    canary_queries: tuple[tuple[str, str], ...] = tuple(DEFAULT_CANARY_QUERIES.items())


@dataclass(frozen=True)
class DaemonConfig:
    repo: RepoConfig = field(default_factory=RepoConfig)
    listen: str = "127.0.0.1:8080"
    state_dir: str = "/var/lib/reconciler"
    cache_dir: str | None = None
    webhook_secret_file: str | None = None
    webhook_secret_env: str | None = "RECONCILER_WEBHOOK_SECRET"
    prometheus_url: str | None = None
    poll_interval: int = 30
    reconcile_interval: int = 10
    drift_interval: int = 300
    git_author: tuple[str, str] = ("reconciler", "reconciler@localhost")
    leader: LeaderConfig = field(default_factory=LeaderConfig)
    terraform_cli_config: str | None = None
    #: ``terraform.sandbox``: ``bwrap`` runs every Terraform command in bubblewrap (see
    #: docs/security.md; the daemon refuses to start when it cannot), ``none`` in a plain
    #: child process (scrubbed environment only: no isolation from the daemon's files).
    #: The default is the sandbox: a daemon that cannot have it refuses to start rather
    #: than hand a pull request's stack its files (set ``none`` explicitly to opt out).
    terraform_sandbox: str = "bwrap"
    #: ``terraform.network``: the sandbox shares the host's network (providers reach
    #: their APIs); false leaves it a loopback only.
    terraform_network: bool = True
    #: ``terraform.provider_mirror``: the providers' filesystem mirror, visible
    #: read-only in the sandbox (the one the CLI configuration installs from).
    terraform_provider_mirror: str | None = None
    #: ``terraform.state_dir``: the stacks' workspaces (default ``<state_dir>/terraform``);
    #: sharded replicas share one (a moved cell continues from its workspace).
    terraform_state_dir: str | None = None
    #: The operator's policy file (see docs/security.md): what the repository may name.
    policy_file: str | None = None
    log_level: str = "info"
    log_format: str = "json"
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    #: ``concurrency:``: global bounds of one tick's work per backend (how many cells
    #: move at once is each wave's ``maxUnavailable`` budget, bounded by these).
    concurrency: Limits = field(default_factory=Limits)
    #: ``kubernetes.qps`` / ``kubernetes.burst``: API requests per second per cluster
    #: after a burst, as client-go's rate limiter; qps 0 (the default): unlimited, the
    #: requests in flight bounded by ``concurrency.kubernetes`` alone.
    kube_qps: float = 0.0
    kube_burst: int = 200
    #: ``shards:``: None (the default) runs one replica under ``leader:``.
    shards: ShardConfig | None = None
    #: ``render:``: the limits of one render of a Helm chart or Kustomize directory (a
    #: cell: in a batch each cell has them) and the chart cache of pinned chart archives.
    render_timeout: float = 30.0
    render_max_output: int = 8 << 20
    chart_cache: str | None = None

    @property
    def git_cache(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.state_dir) / "git"

    def webhook_secret(self) -> bytes:
        """The webhook secret from its file or environment variable (empty: none; an
        unset variable means none, as the default variable usually is)."""
        env = self.webhook_secret_env or ""
        try:
            secret = read_secret(self.webhook_secret_file, env if env in os.environ else None,
                                 os.environ, "the webhook secret")
        except PermanentError as e:
            raise ConfigError(str(e)) from None
        return (secret or "").encode()


_REPO_KEYS = {"url", "branch", "auth", "verify"}
_TOP_KEYS = {"repo", "listen", "state_dir", "cache_dir", "webhook_secret_file",
             "webhook_secret_env", "prometheus_url", "poll_interval", "reconcile_interval",
             "drift_interval", "git_author", "leader", "terraform_cli_config", "terraform",
             "policy_file", "dashboard", "concurrency", "kubernetes", "shards",
             "render",
             "log_level",
             "log_format"}


def _check_keys(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _repo(doc: dict[str, Any], path: str) -> RepoConfig:
    _check_keys(doc, _REPO_KEYS, f"{path}: repo")
    auth, verify = doc.get("auth") or {}, doc.get("verify") or {}
    if verify.get("kind") and not verify.get("signing_key"):
        raise ConfigError(
            f"{path}: repo.verify.signing_key is required when repo.verify.kind is set: "
            "the daemon signs its own status, progress and revert commits with it, and "
            "would refuse its own unsigned commits")
    return RepoConfig(
        url=str(doc.get("url", "")), branch=str(doc.get("branch", "main")),
        username=auth.get("username"), password_file=auth.get("password_file"),
        password_env=auth.get("password_env"), ssh_private_key=auth.get("ssh_private_key"),
        known_hosts=auth.get("known_hosts"), verify_kind=verify.get("kind"),
        allowed_signers=verify.get("allowed_signers"), gpg_home=verify.get("gpg_home"),
        fingerprints=tuple(verify.get("fingerprints") or ()),
        signing_key=verify.get("signing_key"))


_TERRAFORM_KEYS = {"sandbox", "network", "provider_mirror", "state_dir"}


def _terraform(doc: Any, path: str) -> dict[str, Any]:
    """The ``terraform:`` block as DaemonConfig fields."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: terraform: must be a mapping")
    _check_keys(doc, _TERRAFORM_KEYS, f"{path}: terraform")
    sandbox, network = doc.get("sandbox", "bwrap"), doc.get("network", True)
    if sandbox not in ("bwrap", "none"):
        raise ConfigError(f"{path}: terraform.sandbox: bwrap or none, not {sandbox!r}")
    if not isinstance(network, bool):
        raise ConfigError(f"{path}: terraform.network: true or false, not {network!r}")
    mirror, state = doc.get("provider_mirror"), doc.get("state_dir")
    return {"terraform_sandbox": sandbox, "terraform_network": network,
            "terraform_provider_mirror": str(mirror) if mirror is not None else None,
            "terraform_state_dir": str(state) if state is not None else None}


_DASHBOARD_KEYS = {"enabled", "token_file", "trusted_proxies", "user_header", "max_streams",
                   "commit_url", "canary"}
_CANARY_KEYS = {"window", "requests", "errors", "latency"}


def _dashboard(doc: Any, path: str) -> DashboardConfig:
    """The ``dashboard:`` block."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: dashboard: must be a mapping")
    _check_keys(doc, _DASHBOARD_KEYS, f"{path}: dashboard")
    canary = doc.get("canary") or {}
    if not isinstance(canary, dict):
        raise ConfigError(f"{path}: dashboard.canary: must be a mapping")
    _check_keys(canary, _CANARY_KEYS, f"{path}: dashboard.canary")
    enabled, proxies = doc.get("enabled", True), doc.get("trusted_proxies") or []
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: dashboard.enabled: true or false, not {enabled!r}")
    if not isinstance(proxies, list):
        raise ConfigError(f"{path}: dashboard.trusted_proxies: a list of addresses")
    try:
        for p in proxies:
            ipaddress.ip_network(str(p), strict=False)
    except ValueError as e:
        raise ConfigError(f"{path}: dashboard.trusted_proxies: {e}") from None
    streams = doc.get("max_streams", 32)
    if not isinstance(streams, int) or not 1 <= streams <= 1024:
        raise ConfigError(f"{path}: dashboard.max_streams: 1 to 1024, not {streams!r}")
    commit_url = doc.get("commit_url")
    if commit_url is not None and (not str(commit_url).startswith(("https://", "http://"))
                                   or "{sha}" not in str(commit_url)):
        raise ConfigError(f"{path}: dashboard.commit_url: an http(s) URL with {{sha}}")
    queries = dict(DEFAULT_CANARY_QUERIES)
    queries.update({k: str(v) for k, v in canary.items() if k != "window"})
    base = DashboardConfig()
    return DashboardConfig(
        enabled=enabled, token_file=doc.get("token_file"),
        trusted_proxies=tuple(str(p) for p in proxies),
        user_header=str(doc.get("user_header", base.user_header)), max_streams=streams,
        commit_url=str(commit_url) if commit_url is not None else None,
        canary_window=_duration(canary.get("window", "10m"), "dashboard.canary.window",
                                path),
        canary_queries=tuple(queries.items()))


_LIMIT_KEYS = {"cells", "kubernetes", "terraform", "databases"}


def _concurrency(doc: Any, path: str) -> Limits:
    """The ``concurrency:`` block: each bound an integer from 1 to 1024."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: concurrency: must be a mapping")
    _check_keys(doc, _LIMIT_KEYS, f"{path}: concurrency")
    for key, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
            raise ConfigError(f"{path}: concurrency.{key}: an integer from 1 to 1024, "
                              f"not {value!r}")
    return Limits(**doc)


def _kubernetes(doc: Any, path: str) -> dict[str, Any]:
    """The ``kubernetes:`` block (client rate limits) as DaemonConfig fields."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: kubernetes: must be a mapping")
    _check_keys(doc, {"qps", "burst"}, f"{path}: kubernetes")
    qps, burst = doc.get("qps", DaemonConfig.kube_qps), doc.get("burst", DaemonConfig.kube_burst)
    if isinstance(qps, bool) or not isinstance(qps, int | float) or not 0 <= qps <= 100000:
        raise ConfigError(f"{path}: kubernetes.qps: a number from 0 (unlimited) to 100000, "
                          f"not {qps!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= 100000:
        raise ConfigError(f"{path}: kubernetes.burst: an integer from 1 to 100000, "
                          f"not {burst!r}")
    return {"kube_qps": float(qps), "kube_burst": burst}


_SHARD_KEYS = {"count", "leaseDuration", "namespace", "name", "replicaId", "kubeconfig",
               "context"}
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _shards(doc: Any, path: str) -> ShardConfig | None:
    """The ``shards:`` block (absent or null: not sharded)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: shards: must be a mapping")
    _check_keys(doc, _SHARD_KEYS, f"{path}: shards")
    count = doc.get("count", ShardConfig.count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1024:
        raise ConfigError(f"{path}: shards.count: an integer from 1 to 1024, not {count!r}")
    lease = _duration(doc.get("leaseDuration", "15s"), "shards.leaseDuration", path)
    if not 3 <= lease <= 3600:
        raise ConfigError(f"{path}: shards.leaseDuration: from 3s to 1h, not {lease}s")
    namespace, name = str(doc.get("namespace", ShardConfig.namespace)), \
        str(doc.get("name", ShardConfig.name))
    if not _DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        raise ConfigError(f"{path}: shards.namespace: a namespace name, not {namespace!r}")
    if not _DNS_LABEL.fullmatch(name) or len(name) > 30:
        raise ConfigError(f"{path}: shards.name: a DNS label of at most 30 characters, "
                          f"not {name!r}")
    replica = str(doc.get("replicaId") or f"{socket.gethostname()}-{os.getpid()}")
    if not _REPLICA_ID.fullmatch(replica):
        raise ConfigError(f"{path}: shards.replicaId: letters, digits, '.', '_' and '-' "
                          f"(at most 128), not {replica!r}")
    return ShardConfig(count=count, lease_seconds=lease, namespace=namespace, name=name,
                       replica_id=replica, kubeconfig=doc.get("kubeconfig"),
                       context=doc.get("context"))


def _render(doc: Any, path: str) -> dict[str, Any]:
    """The ``render:`` block as DaemonConfig fields."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: render: must be a mapping")
    _check_keys(doc, {"timeout", "max_output", "chart_cache"}, f"{path}: render")
    timeout = _duration(doc.get("timeout", "30s"), "render.timeout", path)
    if not 1 <= timeout <= 3600:
        raise ConfigError(f"{path}: render.timeout: from 1s to 1h, not {doc['timeout']!r}")
    size = doc.get("max_output", DaemonConfig.render_max_output)
    if isinstance(size, bool) or not isinstance(size, int) or not 1024 <= size <= 1 << 30:
        raise ConfigError(f"{path}: render.max_output: bytes, an integer from 1024 to "
                          f"{1 << 30}, not {size!r}")
    charts = doc.get("chart_cache")
    if charts is not None and (not isinstance(charts, str) or not charts):
        raise ConfigError(f"{path}: render.chart_cache: a directory, not {charts!r}")
    return {"render_timeout": float(timeout), "render_max_output": size,
            "chart_cache": charts}


def _duration(value: Any, key: str, path: str) -> int:
    try:
        return seconds(value)
    except ValueError:
        raise ConfigError(f"{path}: {key}: not a duration: {value!r}") from None


def load_config(path: str | None) -> DaemonConfig:
    """The configuration in ``path`` (defaults when None)."""
    if path is None:
        return DaemonConfig()
    try:
        doc = YAML(typ="safe").load(Path(path).read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except YAMLError as e:
        raise ConfigError(f"{path}: not YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: must be a mapping")
    _check_keys(doc, _TOP_KEYS, path)
    author = doc.get("git_author") or {}
    leader = doc.get("leader") or {}
    base = DaemonConfig()
    return replace(
        base, repo=_repo(doc.get("repo") or {}, path),
        listen=str(doc.get("listen", base.listen)),
        state_dir=str(doc.get("state_dir", base.state_dir)), cache_dir=doc.get("cache_dir"),
        webhook_secret_file=doc.get("webhook_secret_file"),
        webhook_secret_env=doc.get("webhook_secret_env", base.webhook_secret_env),
        prometheus_url=doc.get("prometheus_url"),
        poll_interval=_duration(doc.get("poll_interval", "30s"), "poll_interval", path),
        reconcile_interval=_duration(doc.get("reconcile_interval", "10s"),
                                     "reconcile_interval", path),
        drift_interval=_duration(doc.get("drift_interval", "5m"), "drift_interval", path),
        git_author=(str(author.get("name", base.git_author[0])),
                    str(author.get("email", base.git_author[1]))),
        leader=LeaderConfig(**{k: v for k, v in leader.items()
                               if k in LeaderConfig.__dataclass_fields__}),
        terraform_cli_config=doc.get("terraform_cli_config"),
        **_terraform(doc.get("terraform") or {}, path),
        policy_file=doc.get("policy_file"),
        log_level=str(doc.get("log_level", "info")),
        log_format=str(doc.get("log_format", "json")),
        dashboard=_dashboard(doc.get("dashboard") or {}, path),
        concurrency=_concurrency(doc.get("concurrency") or {}, path),
        **_kubernetes(doc.get("kubernetes") or {}, path),
        shards=_shards(doc.get("shards"), path),
        **_render(doc.get("render") or {}, path))
