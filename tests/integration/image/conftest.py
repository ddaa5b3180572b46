"""The container image built by ``hack/image.sh`` (cached: a warm run only hashes its
inputs) and a local control plane of its own for the image tests (session scope)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.testing.k8s import control_plane_fixture

ROOT = Path(__file__).resolve().parents[3]
IMAGE_SCRIPT = ROOT / "hack" / "image.sh"
TOOLS = ("mmdebstrap", "buildah", "podman", "runc")
# podman as hack/image.sh runs it (no systemd on the test machines)
PODMAN = ("podman", "--cgroup-manager=cgroupfs", "--events-backend=file")
# podman's default rlimits for a root container (and even RLIMIT_NPROC at the host's
# own hard limit) are refused by runc on the test VM ("error setting rlimit type 6/7:
# operation not permitted": no CAP_SYS_RESOURCE); limits below the host's are set.
ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")

image_cluster = control_plane_fixture("image", nodes=1)


@dataclass(frozen=True)
class Image:
    """The built image: its reference, size, the containers storage holding it."""

    ref: str
    size_mb: int
    storage_conf: str
    seconds: float  # what hack/image.sh took this time (cached: a few seconds)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_STORAGE_CONF": self.storage_conf}

    def podman(self, *args: str, check: bool = True, timeout: float = 120,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``podman ARGS`` on the image's storage; raises with podman's stderr."""
        out = subprocess.run([*PODMAN, *args], env=self.env(), capture_output=True, text=True,
                             timeout=timeout, input=stdin, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {out.returncode}:\n"
                                 f"{out.stderr[-3000:]}")
        return out

    def run(self, argv: Sequence[str], *opts: str) -> subprocess.CompletedProcess[str]:
        """A throwaway container: ``argv`` with the image's entrypoint replaced by
        ``argv[0]``, the root filesystem read-only, no network."""
        return self.podman("run", "--rm", "--read-only", "--network=none", "--no-healthcheck",
                           *ULIMITS, *opts,
                           "--entrypoint", argv[0], self.ref, *argv[1:], check=False)


@pytest.fixture(scope="session")
def image() -> Image:
    """hack/image.sh's image (built on the first run, reused after)."""
    if os.environ.get("CI") != "true":
        if os.geteuid() != 0:
            pytest.skip("building the image needs root (hack/image.sh)")
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            pytest.skip(f"{', '.join(missing)} not installed (hack/image.sh installs them)")
    start = time.monotonic()
    try:
        out = subprocess.run(["bash", str(IMAGE_SCRIPT)], capture_output=True, text=True,
                             timeout=3000, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("hack/image.sh did not finish within 50 minutes")
    if out.returncode != 0:
        pytest.fail(f"hack/image.sh exited {out.returncode}:\n{out.stderr[-4000:]}")
    fields = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    return Image(ref=fields["image"], size_mb=int(fields["size"].split()[0]),
                 storage_conf=fields["storage"], seconds=time.monotonic() - start)
