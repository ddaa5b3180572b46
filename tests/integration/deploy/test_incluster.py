"""The in-cluster manifests on a real control plane: they apply, the daemon's
ServiceAccount can do exactly what the adapter needs and no more, and leader election
through a Lease works (and is refused outside its namespace)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.kubernetes.client import KubeClient, Target
from reconciler.adapters.kubernetes.lease import LeaseElector
from reconciler.adapters.kubernetes.shardleases import ShardLeases
from reconciler.daemon.config import load_config
from reconciler.localparts.k8s import ControlPlane

pytestmark = pytest.mark.k8s
DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
SA = "system:serviceaccount:reconciler-system:reconciler"


@pytest.fixture(scope="module")
def applied(deploy_cluster: ControlPlane) -> ControlPlane:
    deploy_cluster.kubectl("apply", "--server-side", "-k", str(DEPLOY))
    deploy_cluster.create_namespace("cell-use1-a-01")
    return deploy_cluster


def _can(k: ControlPlane, *args: str) -> bool:
    try:
        return k.kubectl("auth", "can-i", *args, f"--as={SA}").strip() == "yes"
    except RuntimeError as e:  # kubectl exits 1 when the answer is "no"
        assert str(e).rstrip().endswith(":"), e  # "no" goes to stdout, nothing to stderr
        return False


def test_objects_exist(applied: ControlPlane) -> None:
    dep = applied.request("GET", "/apis/apps/v1/namespaces/reconciler-system/deployments/"
                                 "reconciler")
    assert dep["spec"]["replicas"] == 2
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "reconciler"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    pdb = applied.request("GET", "/apis/policy/v1/namespaces/reconciler-system/"
                                 "poddisruptionbudgets/reconciler")
    assert pdb["spec"]["maxUnavailable"] == 1
    net = applied.request("GET", "/apis/networking.k8s.io/v1/namespaces/reconciler-system/"
                                 "networkpolicies/reconciler")
    ports = {p["port"] for rule in net["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 22, 9090, 5432} <= ports, ports
    assert net["spec"]["policyTypes"] == ["Ingress", "Egress"]


NEEDED = [
    ("patch", "deployments.apps", "cell-use1-a-01"),
    ("create", "deployments.apps", "cell-use1-a-01"),
    ("watch", "deployments.apps", "cell-use1-a-01"),
    ("list", "statefulsets.apps", "cell-use1-a-01"),
    ("patch", "configmaps", "cell-use1-a-01"),
    ("delete", "services", "cell-use1-a-01"),
    ("create", "jobs.batch", "cell-use1-a-01"),
    ("get", "jobs.batch", "cell-use1-a-01"),
    ("create", "namespaces", ""),
    ("create", "leases.coordination.k8s.io", "reconciler-system"),
    ("get", "leases.coordination.k8s.io/reconciler", "reconciler-system"),
    ("update", "leases.coordination.k8s.io/reconciler", "reconciler-system"),
]
FORBIDDEN = [
    ("get", "secrets", "cell-use1-a-01"),
    ("list", "secrets", ""),
    ("delete", "namespaces", ""),
    ("update", "leases.coordination.k8s.io/other", "reconciler-system"),
    ("create", "leases.coordination.k8s.io", "kube-system"),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("create", "pods", "cell-use1-a-01"),
    ("create", "pods/exec", "cell-use1-a-01"),
    ("create", "daemonsets.apps", "cell-use1-a-01"),  # node-wide: not in the policy default
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
]


def _args(verb: str, resource: str, ns: str) -> list[str]:
    return [verb, resource, *(["-n", ns] if ns else ["--all-namespaces"])]


@pytest.mark.parametrize(("verb", "resource", "ns"), NEEDED, ids=[" ".join(n) for n in NEEDED])
def test_can_do_what_it_needs(applied: ControlPlane, verb: str, resource: str, ns: str) -> None:
    assert _can(applied, *_args(verb, resource, ns))


@pytest.mark.parametrize(("verb", "resource", "ns"), FORBIDDEN,
                         ids=[" ".join(f) for f in FORBIDDEN])
def test_cannot_do_more(applied: ControlPlane, verb: str, resource: str, ns: str) -> None:
    assert not _can(applied, *_args(verb, resource, ns))


def test_no_wildcards() -> None:
    for doc in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()):
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule


def _sa_kubeconfig(k: ControlPlane, tmp_path: Path) -> str:
    token = k.kubectl("create", "token", "reconciler", "-n", "reconciler-system").strip()
    doc = yaml.safe_load(Path(k.kubeconfig).read_text())
    cluster = doc["clusters"][0]
    cfg = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
           "users": [{"name": "sa", "user": {"token": token}}],
           "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
           "current-context": "sa"}
    path = tmp_path / "sa.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_lease_election_as_the_service_account(applied: ControlPlane, tmp_path: Path) -> None:
    kubeconfig = _sa_kubeconfig(applied, tmp_path)

    def elector(identity: str) -> LeaseElector:
        return LeaseElector("reconciler-system", "reconciler", identity, kubeconfig=kubeconfig,
                            context="sa", lease_seconds=2)

    a, b = elector("replica-a"), elector("replica-b")
    assert a.try_acquire() is True
    assert b.try_acquire() is False
    assert a.try_acquire() is True  # renewal
    time.sleep(2.5)  # a stops renewing: its lease expires
    assert b.try_acquire() is True
    assert a.try_acquire() is False
    b.release()  # hands over at once
    assert a.try_acquire() is True
    lease = applied.request("GET", "/apis/coordination.k8s.io/v1/namespaces/reconciler-system/"
                                   "leases/reconciler")
    assert lease["spec"]["holderIdentity"] == "replica-a"
    assert lease["spec"]["leaseTransitions"] >= 2


def test_lease_elsewhere_is_forbidden(applied: ControlPlane, tmp_path: Path) -> None:
    kubeconfig = _sa_kubeconfig(applied, tmp_path)
    other = LeaseElector("kube-system", "reconciler", "x", kubeconfig=kubeconfig, context="sa")
    with pytest.raises(PermanentError, match="403"):
        other.try_acquire()
    client = KubeClient(Target(kubeconfig, "sa"))
    with pytest.raises(PermanentError, match="forbidden"):
        client.request("GET", "/api/v1/namespaces/cell-use1-a-01/secrets")


SHARDED = DEPLOY.parent / "kubernetes-sharded"


def test_sharded_overlay_renders_three_replicas_with_shards(applied: ControlPlane,
                                                            tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all(applied.kubectl("kustomize", str(SHARDED))))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 3
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    (tmp_path / "config.yaml").write_text(cm["data"]["config.yaml"])
    cfg = load_config(str(tmp_path / "config.yaml"))
    assert cfg.shards is not None and cfg.shards.namespace == "reconciler-system"
    assert cfg.terraform_state_dir == "/var/lib/reconciler-terraform"
    mounts = dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "terraform", "mountPath": cfg.terraform_state_dir} in mounts
    for doc in docs:
        for rule in doc.get("rules", []) if doc["kind"] == "Role" else []:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule


def test_shard_leases_as_the_service_account(applied: ControlPlane, tmp_path: Path) -> None:
    """The overlay's Lease RBAC is enough for the shards (and only in its namespace)."""
    rbac = str(SHARDED / "rbac-shards.yaml")
    applied.kubectl("apply", "--server-side", "-f", rbac)
    try:
        kubeconfig = _sa_kubeconfig(applied, tmp_path)

        def replica(identity: str, ns: str = "reconciler-system") -> ShardLeases:
            return ShardLeases(ns, "rec", identity, count=2, lease_seconds=3,
                               kubeconfig=kubeconfig, context="sa")

        a, b = replica("pod-a"), replica("pod-b")
        a.round()  # a alone: both shards
        b.round()  # b's shard is still a's
        a.round()  # a hands it over
        b.round()  # b takes it
        a.round()
        assert a.map.shards_of("pod-a") and b.map.shards_of("pod-b")
        assert a.map == b.map and set(a.map.replicas()) == {"pod-a", "pod-b"}
        a.release()
        b.release()
        with pytest.raises(PermanentError, match="403"):
            replica("x", "kube-system").round()
    finally:
        applied.kubectl("delete", "-f", rbac)
