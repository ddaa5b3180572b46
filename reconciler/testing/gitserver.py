"""Real Git remotes on loopback for tests: git-http-backend behind basic auth, and sshd.

Owns: serving bare repositories under a root directory with the real
``git-http-backend`` (as CGI, behind HTTP basic auth) and with Debian's ``sshd`` (key auth
only, a generated host key, a known_hosts file for the client), plus seeding a bare
repository from a directory; optionally TLS with a throwaway self-signed certificate (to
test that an untrusted certificate is refused). When a part is missing,
``unavailable()`` fails the test under CI=true and skips it with the reason elsewhere.

Must never: touch a process or directory it did not create, or outlive ``stop()``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = Path("/usr/sbin/sshd")
GIT_ENV = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.test"}


class GitServerUnavailable(RuntimeError):
    """A part the Git servers need is missing."""


def unavailable(e: Exception) -> NoReturn:
    """In a test: fail under CI=true (the parts must be there), skip elsewhere."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"git servers unavailable under CI: {e}")
    pytest.skip(f"git servers unavailable: {e}")


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
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".git"))
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


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1 that nobody trusts."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = directory / "tls.crt", directory / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


class HttpGitServer:
    """Serves the bare repositories under ``root`` over HTTP with basic auth (HTTPS with
    an untrusted self-signed certificate when ``tls``). ``port`` 0 picks a free one;
    giving the old port again restarts a stopped server at the same URL."""

    def __init__(self, root: Path, username: str, password: str, port: int = 0,
                 tls: bool = False) -> None:
        if not HTTP_BACKEND.exists():
            raise GitServerUnavailable(f"{HTTP_BACKEND} not found (install git)")
        self.root, self.username, self.password = root, username, password
        self.requests = 0
        self.tls = tls
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return int(self._server.server_address[1])

    def url(self, name: str, userinfo: bool = False) -> str:
        auth = f"{self.username}:{self.password}@" if userinfo else ""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{name}"

    def _wrap(self, server: ThreadingHTTPServer) -> None:
        with tempfile.TemporaryDirectory(prefix="gitserver-tls-") as tmp:
            crt, key = self_signed_cert(Path(tmp))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(crt, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def start(self) -> HttpGitServer:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        server.daemon_threads = True
        if self.tls:
            self._wrap(server)
        self._server = server
        self._port = self.port
        threading.Thread(target=server.serve_forever, daemon=True).start()
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
    """Debian's sshd on loopback, run as the current user, serving the bare repositories
    under ``root`` to one generated client key (``client_key``); ``known_hosts`` lists
    its generated host key as ``[127.0.0.1]:PORT``. Files go to ``workdir`` (a fresh
    temporary directory, removed on stop, when not given)."""

    def __init__(self, root: Path, workdir: Path | None = None) -> None:
        if not SSHD.exists():
            raise GitServerUnavailable(f"{SSHD} not found (bash hack/git-remotes.sh installs "
                                       "openssh-server)")
        if shutil.which("ssh-keygen") is None:
            raise GitServerUnavailable("ssh-keygen not found (install openssh-client)")
        self.root = root
        self._own_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="gitserver-sshd-"))
        self.port = free_port()
        self.user = _current_user()
        self.client_key = self.dir / "client_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.log = self.dir / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root.resolve() / name}"

    def _config(self) -> Path:
        host_key = self.dir / "host_ed25519"
        _keygen(host_key)
        _keygen(self.client_key)
        authorized = self.dir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.port} {Path(f'{host_key}.pub').read_text()}")
        cfg = self.dir / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized}", f"PidFile {self.dir / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "AuthenticationMethods publickey",
            # root (the usual user here) may log in with a key, never a password
            "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            "UsePAM no", "StrictModes no", "LogLevel VERBOSE", ""]))
        return cfg

    def start(self) -> SshGitServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # privilege separation directory (as root)
            Path("/run/sshd").mkdir(exist_ok=True)
        cfg = self._config()
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(cfg)],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise GitServerUnavailable(f"sshd exited: {self.log.read_text().strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise GitServerUnavailable("sshd did not start listening within 10 s")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SshGitServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
