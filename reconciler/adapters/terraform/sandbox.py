"""Where a Terraform command runs: a child process, inside bubblewrap when configured.

Owns: starting one command with exactly the environment it is given (nothing of the
daemon's is inherited, no file descriptor either), an empty HOME of its own, a deadline
(the whole process group is killed), and — with ``sandbox: bwrap`` — the filesystem
view: the system directories and what the engine needs read-only, the operator's
provider mirror, CLI configuration and granted credential files read-only, the cell's
workspace read-write, a private ``/tmp``, ``/dev`` and a ``/proc`` of its own PID
namespace. Not there: the daemon's secrets, its Git cache, other cells' workspaces,
``/root`` or any home, the rest of ``/etc``, ``/sys``, the daemon's processes.

Why no ``--clearenv``: the environment goes to bubblewrap as its own (it hands it on);
``--setenv`` would put granted credentials on a command line any local user can read
in ``/proc/<pid>/cmdline``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.adapters.errors import PermanentError, TemporaryError

SANDBOXES = ("bwrap", "none")

#: System directories bound read-only (a symlink, as on merged-/usr systems, is
#: recreated as the same symlink).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: What of /etc a process needs: name resolution, users, time zone, the dynamic
#: loader's cache, alternatives, CA certificates. Never all of /etc (the operator's
#: secrets often live there); /etc/ssl/private is not among them.
ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
       "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/passwd", "/etc/group",
       "/etc/localtime", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
       "/etc/alternatives", "/etc/ssl/certs", "/etc/ca-certificates",
       "/etc/ca-certificates.conf", "/etc/pki/tls/certs", "/etc/pki/ca-trust")
#: Paths under these are visible already (read-only) and not bound again.
_SYSTEM_PREFIXES = tuple(Path(d) for d in ("/usr", "/bin", "/sbin", "/lib", "/lib64"))
#: The unprivileged user a sandboxed command runs as (it maps to the daemon's own).
NOBODY = "65534"


@dataclass(frozen=True)
class Outcome:
    """What a finished child process did."""

    returncode: int
    stdout: str
    stderr: str


class Sandbox(Protocol):
    """Turns a command into the command that runs it isolated."""

    @property
    def name(self) -> str:
        """``bwrap`` or ``none``."""
        ...

    def wrap(self, argv: Sequence[str], workdir: Path,
             read_only: Iterable[Path]) -> list[str]:
        """``argv`` run in ``workdir`` (writable), seeing ``read_only`` besides."""
        ...

    def home(self) -> str | None:
        """HOME inside the sandbox, or None to make a fresh directory per command."""
        ...


@dataclass(frozen=True)
class NoSandbox:
    """A plain child process: scrubbed environment, empty HOME, the host's filesystem.

    Hygiene, not isolation: a stack still reads any file the daemon can read, and a
    provisioner can read the daemon's environment in ``/proc/<pid>/environ``.
    """

    name: str = "none"

    def wrap(self, argv: Sequence[str], workdir: Path,
             read_only: Iterable[Path]) -> list[str]:
        return list(argv)

    def home(self) -> str | None:
        return None


def _depth(path: Path) -> int:
    return len(path.parts)


def _system_mounts() -> list[str]:
    out: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            out += ["--ro-bind", d, d]
    for f in ETC:
        out += ["--ro-bind-try", f, f]
    return out


@dataclass(frozen=True)
class Bubblewrap:
    """Each command in a fresh bubblewrap sandbox (every namespace unshared, the network
    too unless ``network``), as an unprivileged user with no capabilities, killed with
    the daemon."""

    binary: str
    network: bool = True
    #: The operator's paths every command may read: provider mirror, CLI
    #: configuration, granted credential files.
    operator_paths: tuple[Path, ...] = ()
    name: str = "bwrap"

    def home(self) -> str | None:
        return "/tmp"

    def wrap(self, argv: Sequence[str], workdir: Path,
             read_only: Iterable[Path]) -> list[str]:
        cmd = [self.binary, "--unshare-all", "--unshare-user", "--cap-drop", "ALL",
               "--uid", NOBODY, "--gid", NOBODY, "--die-with-parent", "--new-session"]
        if self.network:
            cmd.append("--share-net")
        cmd += _system_mounts()
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        work = workdir.resolve()
        binds: dict[Path, str] = {}
        for p in (*self.operator_paths, *read_only):
            for q in {Path(os.path.abspath(p)), p.resolve()}:
                if q.exists() and not any(q.is_relative_to(s) for s in _SYSTEM_PREFIXES):
                    binds.setdefault(q, "--ro-bind")
        binds = {p: flag for p, flag in binds.items()  # one bind per read-only tree
                 if not any(p != q and p.is_relative_to(q) for q in binds)}
        binds[work] = "--bind"
        for path in sorted(binds, key=_depth):  # parents before what lies below them
            cmd += [binds[path], str(path), str(path)]
        # Everything but the workspace and /tmp read-only, the skeleton bubblewrap
        # builds its mounts on included.
        return [*cmd, "--remount-ro", "/", "--chdir", str(work), "--", *argv]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_isolated(sandbox: Sandbox, argv: Sequence[str], workdir: Path,
                 env: Mapping[str, str], timeout: float,
                 read_only: Iterable[Path] = (), what: str = "terraform") -> Outcome:
    """Run ``argv`` in ``workdir`` under ``sandbox`` with exactly ``env`` (plus HOME);
    TemporaryError when it outlives ``timeout`` (its whole process group is killed)."""
    made_home = None
    home = sandbox.home()
    if home is None:
        made_home = tempfile.mkdtemp(prefix="reconciler-tf-home-")
        home = made_home
    try:
        proc = subprocess.Popen(
            sandbox.wrap(argv, workdir, read_only), cwd=workdir,
            env={**env, "HOME": home, "TMPDIR": "/tmp"},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise TemporaryError(f"{what}: no result after {timeout:.0f} s; killed",
                                 60.0) from None
        return Outcome(proc.returncode, out.decode(errors="replace"),
                       err.decode(errors="replace"))
    finally:
        if made_home is not None:
            shutil.rmtree(made_home, ignore_errors=True)


_PROBED: dict[tuple[str, bool], str | None] = {}
_PROBE_LOCK = threading.Lock()


def bwrap_problem(binary: str = "bwrap", network: bool = True) -> str | None:
    """Why bubblewrap cannot sandbox a command here, or None when it can (a real
    sandbox is started once per binary and remembered)."""
    found = shutil.which(binary)
    if found is None:
        return (f"{binary} not found on PATH (install the Debian package bubblewrap, "
                "e.g. hack/bwrap.sh)")
    key = (os.path.realpath(found), network)
    with _PROBE_LOCK:
        if key not in _PROBED:
            _PROBED[key] = _probe(found, network)
        return _PROBED[key]


def _probe(binary: str, network: bool) -> str | None:
    with tempfile.TemporaryDirectory(prefix="reconciler-bwrap-probe-") as work:
        try:
            ran = run_isolated(Bubblewrap(binary, network), ["/bin/sh", "-c", "true"],
                               Path(work), {"PATH": "/usr/bin:/bin"}, 30.0)
        except (OSError, TemporaryError) as e:
            return f"{binary} could not start: {e}"
    if ran.returncode != 0:
        why = " ".join(ran.stderr.split()) or f"exit code {ran.returncode}"
        return f"{binary} fails here: {why}"
    return None


def make_sandbox(sandbox: str, network: bool, operator_paths: Sequence[Path]) -> Sandbox:
    """The sandbox ``terraform.sandbox`` names; PermanentError saying why when it is
    unknown or bubblewrap cannot run (the daemon refuses to start)."""
    if sandbox == "none":
        return NoSandbox()
    if sandbox != "bwrap":
        raise PermanentError(f"terraform.sandbox: {sandbox!r} is not a sandbox "
                             f"({' or '.join(SANDBOXES)})")
    problem = bwrap_problem("bwrap", network)
    if problem:
        raise PermanentError(f"terraform.sandbox: bwrap is configured but cannot be used: "
                             f"{problem}; or set terraform.sandbox: none (no isolation)")
    missing = [str(p) for p in operator_paths if not p.exists()]
    if missing:
        raise PermanentError(f"terraform.sandbox: bwrap: {', '.join(missing)} (the provider "
                             "mirror, CLI configuration or a granted credential file) does "
                             "not exist")
    return Bubblewrap(shutil.which("bwrap") or "bwrap", network, tuple(operator_paths))
