"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl on a random loopback port.

Owns: finding Debian's PostgreSQL binaries, creating a cluster in a temporary directory
(owned by an unprivileged user when running as root, since PostgreSQL refuses root),
starting, stopping and restarting it, creating one database per cell, and removing
everything on teardown. Password authentication over TCP (scram-sha-256) is real.
Must never: touch a cluster it did not create, or leave a server running after ``stop``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off",
                 "shared_buffers=16MB", "max_connections=60", "log_min_messages=warning")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are not installed (run hack/postgres.sh)."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb, or $PG_BINDIR."""
    explicit = os.environ.get("PG_BINDIR")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for cand in reversed(candidates):
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    raise PostgresUnavailable("no PostgreSQL binaries in /usr/lib/postgresql/*/bin "
                              "(run hack/postgres.sh, or set PG_BINDIR)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account the server runs as (None: the current user)."""

    user: str | None

    @staticmethod
    def pick() -> RunAs:
        """``postgres`` (or ``nobody``) when running as root, else the current user."""
        if os.geteuid() != 0:
            return RunAs(None)
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                return RunAs(name)
            except KeyError:
                continue
        raise PostgresUnavailable("running as root and no unprivileged user to run PostgreSQL")

    def argv(self, args: list[str]) -> list[str]:
        """``args`` prefixed to run as this account."""
        return ["runuser", "-u", self.user, "--", *args] if self.user else args

    def chown(self, path: Path) -> None:
        """Give ``path`` to this account."""
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)


class PostgresCluster:
    """One PostgreSQL server in a temporary directory, reachable on 127.0.0.1:<port>."""

    def __init__(self, password: str = "test-superuser-secret") -> None:
        self.bindir = find_bindir()
        self.password = password
        self.run_as = RunAs.pick()
        self.root = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
        self.datadir = self.root / "data"
        self.port = 0
        self.host = "127.0.0.1"
        self.user = SUPERUSER

    # -- lifecycle ---------------------------------------------------------------------

    def init(self) -> None:
        """Run initdb: trust on the socket, scram-sha-256 over TCP, fast unsafe settings."""
        self.root.chmod(0o755)
        self.run_as.chown(self.root)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self.run_as.chown(pwfile)
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
                   "--pwfile", str(pwfile), "--auth-local=trust",
                   "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        pwfile.unlink()
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n".join(FAST_SETTINGS) + "\n")

    def start(self, attempts: int = 3) -> None:
        """Start on a free port (a fresh one per attempt if another process grabs it)."""
        keep_port = self.port
        for attempt in range(attempts):
            self.port = keep_port or free_port()
            try:
                self._pg_ctl("start", "-o", self._server_options(), "-l",
                             str(self.root / "server.log"))
                return
            except subprocess.CalledProcessError:
                if keep_port or attempt == attempts - 1:
                    raise RuntimeError("PostgreSQL did not start:\n" + self.log_tail()) from None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs (``mode``: smart, fast or immediate)."""
        if (self.datadir / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", mode)

    def restart(self) -> None:
        """Stop (fast: terminates sessions) and start again on the same port."""
        self.stop("fast")
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove the cluster's directory."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- use -----------------------------------------------------------------------

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string for the superuser over TCP (includes the password)."""
        return (f"host={self.host} port={self.port} user={self.user} "
                f"password={self.password} dbname={dbname}")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run ``sql`` through psql on the Unix socket; the unaligned, tuples-only output."""
        out = self._run([str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v",
                         "ON_ERROR_STOP=1", "-h", str(self.root), "-p", str(self.port),
                         "-U", SUPERUSER, "-d", dbname, "-c", sql])
        return out.strip()

    def create_database(self, name: str) -> None:
        """CREATE DATABASE ``name`` (a plain identifier)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain identifier: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        log = self.root / "server.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    # -- internals -------------------------------------------------------------------

    def _server_options(self) -> str:
        return f"-c listen_addresses={self.host} -p {self.port} -k {self.root}"

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
                   *args])

    def _run(self, argv: list[str]) -> str:
        proc = subprocess.run(self.run_as.argv(argv), capture_output=True, text=True,
                              timeout=120, cwd=self.root, check=False)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc.stdout


def start_cluster() -> PostgresCluster:
    """A new, started cluster; the caller must call ``destroy()``."""
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
