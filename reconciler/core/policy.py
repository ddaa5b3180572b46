"""The operator's policy: what a desired state may name. Pure.

Owns: the policy's shape (parsed from the operator's configuration, never from the
desired-state repository) and checking a desired state against it — which cluster
targets and namespaces cells may use, which Kubernetes kinds manifests may create,
which database hosts cells may reach and which secrets each host may be given, which
Terraform providers stacks may use and whether provisioners or ``external`` data
sources are allowed. Every violation is a ``Problem`` (``file:line:col: message``); a
revision with any is rejected whole, before merge (``validate --policy``) and again
on every load in the daemon.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from reconciler.core.model import Cell, DatabaseRef, DesiredState, Service
from reconciler.core.yamldoc import Problem

#: Namespaced kinds a policy allows when it lists none for a cluster. Secrets and every
#: cluster-scoped kind must be listed explicitly; so must DaemonSets (node-wide).
DEFAULT_KINDS = ("ConfigMap", "Deployment", "StatefulSet", "Service", "ServiceAccount",
                 "Job", "CronJob", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "Ingress", "NetworkPolicy", "Role", "RoleBinding")


class PolicyError(ValueError):
    """The policy document itself is unusable; the message says where."""


@dataclass(frozen=True)
class ClusterRule:
    """Cells whose target matches ``context``/``kubeconfig`` (globs; absent: any) may use
    namespaces matching ``namespaces`` (globs; ``{cell}`` is the cell's name) and create
    objects of ``kinds``."""

    context: str | None
    kubeconfig: str | None
    namespaces: tuple[str, ...]
    kinds: tuple[str, ...] = DEFAULT_KINDS

    def matches(self, cell: Cell) -> bool:
        k = cell.kubernetes
        return _glob(self.context, k.context) and _glob(self.kubeconfig, k.kubeconfig)

    def namespace_allowed(self, cell: Cell) -> bool:
        ns = cell.kubernetes.namespace
        return any(fnmatchcase(ns, p.replace("{cell}", cell.name)) for p in self.namespaces)


@dataclass(frozen=True)
class DatabaseRule:
    """Database hosts (glob) and ports cells may reach, and the secrets they may send."""

    host: str
    ports: tuple[int, ...] = ()
    secret_env: tuple[str, ...] = ()
    secret_files: tuple[str, ...] = ()

    def matches(self, ref: DatabaseRef) -> bool:
        return fnmatchcase(ref.host, self.host) and (not self.ports or ref.port in self.ports)


@dataclass(frozen=True)
class TerraformRule:
    """Providers stacks may require (source addresses, globs); provisioners and the
    ``external`` data source run code on the host, so they are off unless allowed.

    ``credential_env`` (names) and ``credential_files`` (absolute paths) are the
    daemon's variables and files Terraform is given — the providers' credentials.
    Nothing else of the daemon's environment reaches Terraform, and in the sandbox no
    other file of the daemon's is visible.
    """

    providers: tuple[str, ...] = ()
    provisioners: bool = False
    external_data: bool = False
    credential_env: tuple[str, ...] = ()
    credential_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    """Everything the operator grants the desired-state repository."""

    clusters: tuple[ClusterRule, ...] = ()
    databases: tuple[DatabaseRule, ...] = ()
    terraform: TerraformRule = field(default_factory=TerraformRule)
    source: str = "policy"


def _glob(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))


# -- parsing the operator's document ------------------------------------------------------
def _strs(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}.{key}: a list of strings")
    return tuple(value)


def _keys(doc: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{where}: a mapping")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return doc


def _cluster(doc: Any, where: str) -> ClusterRule:
    d = _keys(doc, {"context", "kubeconfig", "namespaces", "kinds"}, where)
    namespaces = _strs(d, "namespaces", where)
    if not namespaces:
        raise PolicyError(f"{where}.namespaces: at least one namespace pattern")
    kinds = _strs(d, "kinds", where) if "kinds" in d else DEFAULT_KINDS
    return ClusterRule(d.get("context"), d.get("kubeconfig"), namespaces, kinds)


def _database(doc: Any, where: str) -> DatabaseRule:
    d = _keys(doc, {"host", "ports", "secretEnv", "secretFiles"}, where)
    if not isinstance(d.get("host"), str):
        raise PolicyError(f"{where}.host: a host name or glob")
    ports = d.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
        raise PolicyError(f"{where}.ports: a list of port numbers")
    return DatabaseRule(d["host"], tuple(ports), _strs(d, "secretEnv", where),
                        _strs(d, "secretFiles", where))


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _terraform(doc: Any, where: str) -> TerraformRule:
    d = _keys(doc, {"providers", "provisioners", "externalData", "credentialEnv",
                    "credentialFiles"}, where)
    for key in ("provisioners", "externalData"):
        if not isinstance(d.get(key, False), bool):
            raise PolicyError(f"{where}.{key}: true or false")
    env, files = _strs(d, "credentialEnv", where), _strs(d, "credentialFiles", where)
    bad = [n for n in env if not _ENV_NAME.match(n)]
    if bad:
        raise PolicyError(f"{where}.credentialEnv: not variable names: {', '.join(bad)}")
    relative = [f for f in files if not f.startswith("/")]
    if relative:
        raise PolicyError(f"{where}.credentialFiles: absolute paths only: "
                          f"{', '.join(relative)}")
    return TerraformRule(_strs(d, "providers", where), bool(d.get("provisioners", False)),
                         bool(d.get("externalData", False)), env, files)


def policy_from_doc(doc: Any, source: str = "policy") -> Policy:
    """The policy in ``doc`` (the ``policy`` block of the daemon's configuration, or a
    policy file); PolicyError naming the key when it is malformed."""
    d = _keys(doc, {"apiVersion", "kind", "clusters", "databases", "terraform"}, source)
    clusters, dbs = d.get("clusters", []), d.get("databases", [])
    if not isinstance(clusters, list) or not isinstance(dbs, list):
        raise PolicyError(f"{source}: clusters and databases are lists")
    return Policy(
        tuple(_cluster(c, f"{source}.clusters[{i}]") for i, c in enumerate(clusters)),
        tuple(_database(x, f"{source}.databases[{i}]") for i, x in enumerate(dbs)),
        _terraform(d.get("terraform", {}), f"{source}.terraform"), source)


# -- checking a desired state ----------------------------------------------------------
def _at(cell: Cell, message: str) -> Problem:
    return Problem(cell.source.path, cell.source.line, cell.source.col, message)


def cluster_for(policy: Policy, cell: Cell) -> ClusterRule | None:
    """The first cluster rule matching the cell's target."""
    return next((r for r in policy.clusters if r.matches(cell)), None)


def _cell_problems(policy: Policy, cell: Cell) -> list[Problem]:
    k, out = cell.kubernetes, []
    rule = cluster_for(policy, cell)
    if rule is None:
        out.append(_at(cell, f"spec.kubernetes: the target (context {k.context!r}, kubeconfig "
                             f"{k.kubeconfig!r}) is not allowed by {policy.source}"))
    elif not rule.namespace_allowed(cell):
        out.append(_at(cell, f"spec.kubernetes.namespace: {k.namespace!r} is not allowed for "
                             f"this cluster by {policy.source} (allowed: "
                             f"{', '.join(rule.namespaces)})"))
    for db in cell.databases:
        out += [_at(cell, f"spec.databases[{db.name}]: {m}") for m in _db_problems(policy, db)]
    return out


def _db_problems(policy: Policy, db: DatabaseRef) -> list[str]:
    rule = next((r for r in policy.databases if r.matches(db)), None)
    if rule is None:
        return [f"host {db.host}:{db.port} is not allowed by {policy.source}"]
    out = []
    if db.secret_env is not None and db.secret_env not in rule.secret_env:
        out.append(f"secretEnv {db.secret_env} is not granted to host {db.host} by "
                   f"{policy.source}")
    if db.secret_file is not None and not any(fnmatchcase(db.secret_file, p)
                                              for p in rule.secret_files):
        out.append(f"secretFile {db.secret_file} is not granted to host {db.host} by "
                   f"{policy.source}")
    return out


_KIND = re.compile(r"^kind:\s*(\S.*?)\s*(?:#.*)?$", re.MULTILINE)


def manifest_kinds(text: str) -> list[tuple[int, str]]:
    """(line, kind) of every top-level ``kind:`` in a manifest template."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1).strip("'\""))
            for m in _KIND.finditer(text)]


def _kind_files(desired: DesiredState, svc: Service) -> list[str]:
    """The files whose ``kind:`` lines say what the service creates: its templates, or
    the manifests of its chart (``templates/``) or Kustomize directory."""
    root = svc.tool_root
    if root is None:
        return list(svc.manifests)
    under = desired.files_under(root)
    if svc.helm is not None:
        return [f"{root}/{r}" for r in under if f"/{r}".find("/templates/") >= 0
                and r.endswith((".yaml", ".yml"))]
    return [f"{root}/{r}" for r in under if r.endswith((".yaml", ".yml"))
            and posixpath.basename(r) not in ("kustomization.yaml", "kustomization.yml")]


def _manifest_problems(policy: Policy, desired: DesiredState) -> list[Problem]:
    out: list[Problem] = []
    for svc in desired.services.values():
        rules = {cluster_for(policy, c) for c in desired.cells.values()} - {None}
        for path in _kind_files(desired, svc):
            for line, kind in manifest_kinds(desired.files.get(path, "")):
                if "{{" in kind:
                    out.append(Problem(path, line, 1, "kind: must be literal under a policy"))
                    continue
                denied = sorted(r.context or r.kubeconfig or "*" for r in rules
                                if r is not None and kind not in r.kinds)
                if denied:
                    out.append(Problem(path, line, 1, f"kind {kind} is not allowed by "
                                                      f"{policy.source} (clusters: "
                                                      f"{', '.join(denied)})"))
    return out


_PROVIDER = re.compile(r'source\s*=\s*"([^"]+)"')
_PROVISIONER = re.compile(r'^\s*provisioner\s+"', re.MULTILINE)
_EXTERNAL = re.compile(r'^\s*data\s+"external"', re.MULTILINE)


def _full_address(source: str) -> str:
    parts = source.split("/")
    return source if len(parts) == 3 else "registry.terraform.io/" + source


def _stack_problems(policy: Policy, path: str, text: str) -> Iterable[Problem]:
    t = policy.terraform
    for m in _PROVIDER.finditer(text):
        address = _full_address(m.group(1))
        if "/" in m.group(1) and not any(fnmatchcase(address, p) for p in t.providers):
            yield Problem(path, text.count("\n", 0, m.start()) + 1, 1,
                          f"provider {address} is not allowed by {policy.source}")
    for pattern, allowed, what in ((_PROVISIONER, t.provisioners, "provisioners"),
                                   (_EXTERNAL, t.external_data, "the external data source")):
        for m in pattern.finditer(text) if not allowed else ():
            yield Problem(path, text.count("\n", 0, m.start()) + 1, 1,
                          f"{what} run code on the host and are not allowed by "
                          f"{policy.source}")


def _terraform_problems(policy: Policy, desired: DesiredState) -> list[Problem]:
    stacks = {s.terraform for s in desired.services.values() if s.terraform}
    return [p for path, text in sorted(desired.files.items())
            if path.endswith(".tf") and any(path.startswith(f"{s}/") for s in stacks)
            for p in _stack_problems(policy, path, text)]


def check_policy(desired: DesiredState, policy: Policy) -> tuple[Problem, ...]:
    """Every violation of ``policy`` in ``desired`` (empty: allowed)."""
    out: list[Problem] = []
    for name in sorted(desired.cells):
        out += _cell_problems(policy, desired.cells[name])
    out += _manifest_problems(policy, desired)
    out += _terraform_problems(policy, desired)
    return tuple(sorted(set(out), key=lambda p: (p.path, p.line, p.col, p.message)))


def kind_allowed(policy: Policy, cell: Cell, kind: str) -> bool:
    """Whether ``policy`` lets objects of ``kind`` be applied in ``cell`` (apply-time)."""
    rule = cluster_for(policy, cell)
    return rule is not None and kind in rule.kinds


__all__: Sequence[str] = ("DEFAULT_KINDS", "ClusterRule", "DatabaseRule", "Policy",
                          "PolicyError", "TerraformRule", "check_policy", "cluster_for",
                          "kind_allowed", "manifest_kinds", "policy_from_doc")
