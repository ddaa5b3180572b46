"""A throwaway Kubernetes control plane on loopback, with KWOK standing in for kubelets.

Owns: finding the binaries built by ``hack/k8s-testenv/build.sh`` (or given through
``TEST_ASSET_*`` / ``KUBEBUILDER_ASSETS``), generating a CA and client/serving
certificates, starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
KWOK on random free ports with a temporary data dir, creating fake nodes, writing a
kubeconfig, and tearing everything down. Several control planes may run at once (one
per simulated cluster).

Pod labels understood by the KWOK stages configured here:
  ``reconciler.dev/test-unready: "true"``  the pod runs but never becomes Ready;
  ``reconciler.dev/test-fail: "true"``     the pod fails (a Job's pod fails; exit 1).
Other pods become Ready at once, and a Job's pods then succeed.

Must never: touch a process or directory it did not create, or outlive ``stop()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

K8S_VERSION = os.environ.get("RECONCILER_K8S_VERSION", "v1.37.2")
UNREADY_LABEL = "reconciler.dev/test-unready"
FAIL_LABEL = "reconciler.dev/test-fail"
#: The controller-manager's and scheduler's API client limits (requests/s, burst).
API_CLIENT_LIMITS = ("--kube-api-qps=300", "--kube-api-burst=600")

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
            "kubectl", "kwok")
START_TIMEOUT = 90.0


class K8sUnavailable(RuntimeError):
    """The control-plane binaries are missing or the control plane did not start."""


def cache_dir() -> Path:
    """Where build.sh puts the binaries for ``K8S_VERSION``."""
    root = Path(os.environ.get("RECONCILER_CACHE", Path.home() / ".cache" / "reconciler"))
    return root / "k8s" / K8S_VERSION


def find_binary(name: str) -> Path:
    """``TEST_ASSET_<NAME>``, then ``$KUBEBUILDER_ASSETS/<name>``, then the build cache."""
    env = os.environ.get("TEST_ASSET_" + name.upper().replace("-", "_"))
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    for cand in (env, assets and str(Path(assets) / name), str(cache_dir() / name)):
        if cand and os.access(cand, os.X_OK):
            return Path(cand)
    raise K8sUnavailable(f"{name} not found (run hack/k8s-testenv/build.sh, or set "
                         f"TEST_ASSET_{name.upper().replace('-', '_')} / KUBEBUILDER_ASSETS)")


def find_binaries() -> dict[str, Path]:
    """Every binary the control plane needs."""
    return {name: find_binary(name) for name in BINARIES}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pki:
    """Paths of the generated CA, serving cert, admin client cert and SA key pair."""

    ca_crt: Path
    ca_key: Path
    server_crt: Path
    server_key: Path
    admin_crt: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def make_pki(directory: Path) -> Pki:
    """A CA, a 127.0.0.1 serving cert, a system:masters client cert and an SA key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def cert(subject: x509.Name, k: ec.EllipticCurvePrivateKey, issuer: x509.Name,
             signer: ec.EllipticCurvePrivateKey, ca: bool,
             exts: list[x509.ExtensionType]) -> bytes:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        for ext in exts:
            b = b.add_extension(ext, critical=False)
        return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_k, srv_k, adm_k, sa_k = key(), key(), key(), key()
    ca_n = name("reconciler-test-ca")
    san = x509.SubjectAlternativeName([
        x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.1"))])
    server_usage = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH])
    client_usage = x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH])
    d = directory
    return Pki(
        ca_crt=_write_pem(d / "ca.crt", cert(ca_n, ca_k, ca_n, ca_k, True, [])),
        ca_key=_write_pem(d / "ca.key", pem_key(ca_k)),
        server_crt=_write_pem(d / "apiserver.crt", cert(
            name("kube-apiserver"), srv_k, ca_n, ca_k, False, [san, server_usage])),
        server_key=_write_pem(d / "apiserver.key", pem_key(srv_k)),
        admin_crt=_write_pem(d / "admin.crt", cert(
            name("reconciler-admin", "system:masters"), adm_k, ca_n, ca_k, False,
            [client_usage])),
        admin_key=_write_pem(d / "admin.key", pem_key(adm_k)),
        sa_key=_write_pem(d / "sa.key", pem_key(sa_k)),
        sa_pub=_write_pem(d / "sa.pub", sa_k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
    )


# ---------------------------------------------------------------- KWOK stages

_POD_STATUS_RUNNING = """\
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "%(ready)s"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "%(ready)s"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: %(ready_bool)s
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) \
( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
"""

_POD_STATUS_TERMINATED = """\
      {{ $now := Now }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: %(code)s
            finishedAt: {{ $now | Quote }}
            reason: %(reason)s
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: %(phase)s
"""


def _stage(name: str, kind: str, exprs: list[dict[str, Any]], next_: dict[str, Any],
           delay_ms: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"resourceRef": {"apiGroup": "v1", "kind": kind},
                            "selector": {"matchExpressions": exprs}, "next": next_}
    if delay_ms:
        spec["delay"] = {"durationMilliseconds": delay_ms,
                         "jitterDurationMilliseconds": delay_ms + delay_ms // 5}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": name}, "spec": spec}


def _label(key: str, op: str) -> dict[str, Any]:
    expr: dict[str, Any] = {"key": f'.metadata.labels["{key}"]', "operator": op}
    if op in ("In", "NotIn"):
        expr["values"] = ["true"]
    return expr


def _phase(*phases: str) -> dict[str, Any]:
    return {"key": ".status.phase", "operator": "In", "values": list(phases)}


_ALIVE = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_NOT_READY = {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
              "operator": "NotIn", "values": ["True"]}
_READY = {"key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
          "operator": "In", "values": ["True"]}
_JOB_POD = {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]}

_NODE_STATUS = """\
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
"""

_NODE_INIT = _NODE_STATUS + """\
      addresses:
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      allocatable:
        cpu: 1k
        memory: 1Ti
        pods: 1M
      capacity:
        cpu: 1k
        memory: 1Ti
        pods: 1M
      nodeInfo:
        architecture: amd64
        kubeletVersion: fake
        operatingSystem: linux
      phase: Running
"""


def kwok_stages() -> list[dict[str, Any]]:
    """Node init/heartbeat and pod lifecycle stages, with the test labels honoured."""
    running = {"ready": "True", "ready_bool": "true"}
    unready = {"ready": "False", "ready_bool": "false"}
    ok = {"code": 0, "reason": "Completed", "phase": "Succeeded"}
    bad = {"code": 1, "reason": "Error", "phase": "Failed"}
    return [
        _stage("node-initialize", "Node", [_NOT_READY], {"statusTemplate": _NODE_INIT}),
        _stage("node-heartbeat", "Node", [_phase("Running"), _READY],
               {"statusTemplate": _NODE_STATUS}, delay_ms=10_000),
        _stage("pod-ready", "Pod",
               [_ALIVE, _phase("Pending"), _NOT_READY, _label(UNREADY_LABEL, "NotIn"),
                _label(FAIL_LABEL, "NotIn")],
               {"statusTemplate": _POD_STATUS_RUNNING % running}),
        _stage("pod-unready", "Pod",
               [_ALIVE, _phase("Pending"), _label(UNREADY_LABEL, "In"),
                _label(FAIL_LABEL, "NotIn")],
               {"statusTemplate": _POD_STATUS_RUNNING % unready}),
        _stage("pod-fail", "Pod", [_ALIVE, _phase("Pending", "Running"),
                                   _label(FAIL_LABEL, "In")],
               {"statusTemplate": _POD_STATUS_TERMINATED % bad}, delay_ms=300),
        _stage("pod-complete", "Pod", [_ALIVE, _phase("Running"), _JOB_POD,
                                       _label(FAIL_LABEL, "NotIn")],
               {"statusTemplate": _POD_STATUS_TERMINATED % ok}, delay_ms=300),
        _stage("pod-delete", "Pod",
               [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
               {"delete": True}),
    ]


# ---------------------------------------------------------------- processes


@dataclass
class _Proc:
    """One child process, its command and its log file."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        p, self.popen = self.popen, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    """A running local cluster: its ports, kubeconfig, PKI and child processes."""

    name: str
    workdir: Path
    bins: Mapping[str, Path]
    pki: Pki
    etcd_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    procs: dict[str, _Proc] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def context(self) -> str:
        return self.name

    # -- lifecycle

    def start(self, nodes: int = 2) -> None:
        """Start every component, create ``nodes`` KWOK nodes, wait until they are Ready."""
        write_kubeconfig(self.kubeconfig, [self])
        self._run("etcd", self._etcd_argv())
        self._run("kube-apiserver", self._apiserver_argv())
        self.wait_ready()
        for name, argv in (("kube-controller-manager", self._kcm_argv()),
                           ("kube-scheduler", self._scheduler_argv()),
                           ("kwok", self._kwok_argv())):
            self._run(name, argv)
        self._kwok_port_race()
        for i in range(nodes):
            self.create_node(f"kwok-node-{i}")
        self._wait(lambda: self._ready_nodes() >= nodes, "KWOK nodes Ready")
        self._wait(lambda: self._has_default_sa(), "default service account")

    def stop(self) -> None:
        """Stop every process (reverse order) and remove the data directory."""
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (to simulate an outage); ``start_apiserver`` resumes."""
        self.procs["kube-apiserver"].stop()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port and wait until it is ready."""
        self.procs["kube-apiserver"].start()
        self.wait_ready()

    def _kwok_port_race(self, attempts: int = 3) -> None:
        """KWOK serves on a port picked free a moment before it binds it: when another
        process took it meanwhile, start KWOK again on another one."""
        for _ in range(attempts):
            time.sleep(1.0)
            kwok = self.procs["kwok"]
            if kwok.alive() or "address already in use" not in kwok.tail():
                return
            self._run("kwok", self._kwok_argv())

    def _run(self, name: str, argv: list[str]) -> None:
        proc = _Proc(name, argv, self.workdir / f"{name}.log")
        self.procs[name] = proc
        proc.start()

    # -- waiting

    def _wait(self, cond: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.procs.values() if p.popen is not None and not p.alive()]
            if dead:
                raise K8sUnavailable(f"{dead[0].name} exited:\n{dead[0].tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                if cond():
                    return
            time.sleep(0.2)
        raise K8sUnavailable(f"timed out waiting for {what} on {self.name}")

    def wait_ready(self) -> None:
        """Wait until the API server answers /readyz."""
        self._wait(lambda: self.request("GET", "/readyz", raw=True) == "ok", "/readyz")

    def _ready_nodes(self) -> int:
        items = self.request("GET", "/api/v1/nodes")["items"]
        return sum(1 for n in items for c in n.get("status", {}).get("conditions", [])
                   if c["type"] == "Ready" and c["status"] == "True")

    def _has_default_sa(self) -> bool:
        try:
            self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        except urllib.error.HTTPError:
            return False
        return True

    # -- API helpers for tests (the adapter has its own client)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_crt))
        ctx.load_cert_chain(str(self.pki.admin_crt), str(self.pki.admin_key))
        return ctx

    def request(self, method: str, path: str, body: Any = None, raw: bool = False,
                content_type: str = "application/json") -> Any:
        """One admin API call; JSON in and out (``raw``: the text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=10) as resp:
            text = resp.read().decode()
        return text if raw else json.loads(text)

    def create_node(self, name: str) -> None:
        """A KWOK-managed node."""
        self.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
        })

    def create_namespace(self, name: str) -> None:
        """Create a namespace (no error when it exists)."""
        try:
            self.request("POST", "/api/v1/namespaces",
                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl against this cluster; returns stdout, raises on failure."""
        out = subprocess.run([str(self.bins["kubectl"]), "--kubeconfig", str(self.kubeconfig),
                              *args], input=stdin, capture_output=True, text=True, timeout=60,
                             check=False)
        if out.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    # -- argv

    def _etcd_argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{self.etcd_port}"
        return [str(self.bins["etcd"]), "--name", "default",
                "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}", "--unsafe-no-fsync",
                "--log-level", "warn"]

    def _apiserver_argv(self) -> list[str]:
        p = self.pki
        return [str(self.bins["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={p.server_crt}", f"--tls-private-key-file={p.server_key}",
                f"--client-ca-file={p.ca_crt}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC", "--allow-privileged=true",
                "--enable-priority-and-fairness=false", "--profiling=false",
                "--endpoint-reconciler-type=none", "-v=1"]

    def _component_common(self) -> list[str]:
        kc = str(self.kubeconfig)
        # No HTTPS endpoint (nothing here reads their health or metrics): a port picked
        # free and bound a moment later could be taken meanwhile by another plane or
        # test, and the component exited with "address already in use".
        return [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}", "--leader-elect=false",
                "--secure-port=0", "-v=1"]

    def _kcm_argv(self) -> list[str]:
        return [str(self.bins["kube-controller-manager"]), *self._component_common(),
                f"--service-account-private-key-file={self.pki.sa_key}",
                f"--root-ca-file={self.pki.ca_crt}",
                "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
                # The default client limits (20 requests/s, burst 30) made the controllers,
                # not the reconciler, the slowest part of a 1,000-cell wave here (each
                # Deployment rollout costs the controllers several requests).
                *API_CLIENT_LIMITS,
                # KWOK's fake kubelets never mark a pod Ready again once the node
                # controller has marked it not ready, so a short API server outage (the
                # e2e outage scenario) must not make the nodes look dead.
                "--node-monitor-grace-period=5m"]

    def _scheduler_argv(self) -> list[str]:
        return [str(self.bins["kube-scheduler"]), *self._component_common(),
                *API_CLIENT_LIMITS]

    def _kwok_argv(self) -> list[str]:
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text("\n---\n".join(json.dumps(s) for s in kwok_stages()))
        return [str(self.bins["kwok"]), f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}", "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address=127.0.0.1:{free_port()}",
                "--cidr=10.244.0.0/16", "--node-ip=10.1.0.1"]


def write_kubeconfig(path: Path, planes: list[ControlPlane],
                     namespaces: Mapping[str, str] | None = None) -> Path:
    """A kubeconfig with one context per control plane (named after it)."""
    ns = namespaces or {}
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": p.name, "cluster": {
            "server": p.server, "certificate-authority": str(p.pki.ca_crt)}} for p in planes],
        "users": [{"name": f"{p.name}-admin", "user": {
            "client-certificate": str(p.pki.admin_crt),
            "client-key": str(p.pki.admin_key)}} for p in planes],
        "contexts": [{"name": p.name, "context": {
            "cluster": p.name, "user": f"{p.name}-admin",
            "namespace": ns.get(p.name, "default")}} for p in planes],
        "current-context": planes[0].name,
    }
    path.write_text(json.dumps(doc, indent=1))
    return path


def start_control_plane(name: str = "cluster", nodes: int = 2) -> ControlPlane:
    """Start a fresh control plane; raises K8sUnavailable (after cleaning up) on failure."""
    bins = find_binaries()
    workdir = Path(tempfile.mkdtemp(prefix=f"reconciler-k8s-{name}-"))
    (workdir / "certs").mkdir()
    try:
        plane = ControlPlane(name, workdir, bins, make_pki(workdir / "certs"))
    except ImportError as e:
        shutil.rmtree(workdir, ignore_errors=True)
        raise K8sUnavailable(f"the cryptography package is needed: {e}") from e
    try:
        plane.start(nodes)
    except BaseException:
        plane.stop()
        raise
    return plane
