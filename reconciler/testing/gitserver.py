"""Real Git remotes on loopback for tests: git-http-backend behind basic auth, and sshd.

Owns: serving bare repositories under a root directory with the real
``git-http-backend`` (as CGI, behind HTTP basic auth) and with Debian's ``sshd`` (key auth
only, a generated host key, a known_hosts file for the client), plus seeding a bare
repository from a directory. When a part is missing the fixtures fail under CI=true and
skip with the reason elsewhere.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = Path("/usr/sbin/sshd")
GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.test"}


class GitServerUnavailable(RuntimeError):
    """A part the Git servers need is missing."""


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run the git CLI in ``cwd`` as a developer; its output."""
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
                          check=True, text=True, capture_output=True).stdout.strip()


def seed_bare(root: Path, name: str, source: Path, branch: str = "main") -> Path:
    """A bare repository ``root/name`` whose ``branch`` holds ``source``'s files."""
    bare = root / name
    git(root, "init", "-q", "--bare", "-b", branch, str(bare))
    git(bare, "config", "http.receivepack", "true")
    work = root / f".{name}-seed"
    shutil.copytree(source, work)
    git(work, "init", "-q", "-b", branch)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "seed")
    git(work, "push", "-q", str(bare), f"{branch}:{branch}")
    shutil.rmtree(work)
    return bare


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cgi_env(handler: BaseHTTPRequestHandler, root: Path, user: str, length: int) -> dict[
        str, str]:
    path, _, query = handler.path.partition("?")
    return {**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
            "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": handler.command, "PATH_INFO": path, "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length), "REMOTE_USER": user, "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
            "SERVER_PROTOCOL": "HTTP/1.1"}


def _handler(server: HttpGitServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(
                f"{server.username}:{server.password}".encode()).decode()
            return hmac.compare_digest(given, want)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    data += self.rfile.read(size)
                    self.rfile.readline()
            else:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                data = gzip.decompress(data)
            return data

        def _serve(self) -> None:
            body = self._body() if self.command == "POST" else b""
            if not self._authorised():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            server.requests += 1
            out = subprocess.run([str(HTTP_BACKEND)], input=body, capture_output=True,
                                 env=_cgi_env(self, server.root, server.username, len(body)),
                                 check=False).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

    return Handler


class HttpGitServer:
    """Serves the bare repositories under ``root`` over HTTP with basic auth."""

    def __init__(self, root: Path, username: str, password: str, port: int = 0) -> None:
        if not HTTP_BACKEND.exists():
            raise GitServerUnavailable(f"{HTTP_BACKEND} not found (install git)")
        self.root, self.username, self.password = root, username, password
        self.requests = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, name: str, userinfo: bool = False) -> str:
        auth = f"{self.username}:{self.password}@" if userinfo else ""
        return f"http://{auth}127.0.0.1:{self.port}/{name}"

    def start(self) -> HttpGitServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        self._server.daemon_threads = True
        self._port = self.port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HttpGitServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class SshGitServer:
    """An sshd on loopback serving the bare repositories under ``root`` (key auth only)."""

    def __init__(self, root: Path, workdir: Path) -> None:
        if not SSHD.exists():
            raise GitServerUnavailable(f"{SSHD} not found (bash hack/git-remotes.sh installs "
                                       "openssh-server)")
        self.root, self.dir = root, workdir
        self.port = free_port()
        self.user = os.environ.get("USER") or subprocess.run(
            ["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        self.client_key = workdir / "client_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root / name}"

    def _keygen(self, path: Path) -> None:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True)

    def _config(self) -> Path:
        host_key = self.dir / "host_ed25519"
        self._keygen(host_key)
        self._keygen(self.client_key)
        authorized = self.dir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {Path(f'{host_key}.pub').read_text()}")
        cfg = self.dir / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized}", f"PidFile {self.dir / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "UsePAM no",
            "StrictModes no", "LogLevel ERROR", "Subsystem sftp internal-sftp", ""]))
        return cfg

    def start(self) -> SshGitServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        cfg = self._config()
        self._proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(cfg)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise GitServerUnavailable(f"sshd exited: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise GitServerUnavailable("sshd did not start listening within 10 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> SshGitServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
