"""``reconciler run`` as a real process under hostile HTTP clients: a non-ASCII signature
header, 200 parallel signed deliveries, 300 idle connections against a daemon whose
file-descriptor limit is 256, and a replayed Standard-Webhooks delivery. Each of these
broke the daemon's stdlib server (dropped connection with a traceback, resets, a dead
``/healthz``, an accepted replay)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from reconciler.testing.gitserver import free_port

EXAMPLE = Path(__file__).resolve().parents[3] / "example-repo"
SECRET = "http-limits-secret-never-logged-5d1e"
BODY = json.dumps({"ref": "refs/heads/main"}).encode()
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
NOFILE = 256


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _request(port: int, raw: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _post(headers: list[tuple[bytes, bytes]], body: bytes = BODY) -> bytes:
    lines = [b"POST /webhook HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body)]
    lines += [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _github(body: bytes = BODY) -> list[tuple[bytes, bytes]]:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return [(b"X-Hub-Signature-256", b"sha256=" + sig.encode())]


def _standard(msg_id: str, ts: int, body: bytes = BODY) -> list[tuple[bytes, bytes]]:
    mac = hmac.new(SECRET.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return [(b"webhook-id", msg_id.encode()), (b"webhook-timestamp", str(ts).encode()),
            (b"webhook-signature", b"v1," + base64.b64encode(mac.digest()))]


def test_real_daemon_survives_hostile_http_clients(tmp_path: Path) -> None:
    repo = tmp_path / "fleet"
    shutil.copytree(EXAMPLE, repo)
    (tmp_path / "webhook").write_text(SECRET)
    port = free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({
        "repo": {"url": str(repo), "branch": "main"}, "listen": f"127.0.0.1:{port}",
        "state_dir": str(tmp_path / "state"),
        "webhook_secret_file": str(tmp_path / "webhook"), "poll_interval": "1h",
        "reconcile_interval": "1h"}))
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "run", "--config",
                             str(cfg)], stderr=log.open("w"), stdout=subprocess.DEVNULL,
                            preexec_fn=_low_fd_limit)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if _request(port, HEALTHZ, timeout=1) == (200, b"ok\n"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)

        # a non-ASCII signature: the same bare 401 as any bad signature
        for headers in ([(b"X-Hub-Signature-256", b"sha256=" + "é".encode() * 32)],
                        [(b"X-Gitea-Signature", b"\xff" * 64)],
                        [*_standard("m\u00e9", int(time.time()))[:2],
                         (b"webhook-signature", "v1,ü".encode())]):
            assert _request(port, _post(headers)) == (401, b"unauthorized\n")

        # 200 parallel signed deliveries: every one answered
        n = 200
        barrier = threading.Barrier(n)
        results: list[object] = [None] * n

        def one(i: int) -> None:
            try:
                barrier.wait(10)
                results[i] = _request(port, _post(_github()), timeout=20)[0]
            except OSError as e:
                results[i] = repr(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        failed = [r for r in results if r != 202]
        assert failed == [], f"{len(failed)} of {n} failed, e.g. {failed[:3]}"

        # 300 idle connections (more than the daemon's 256 descriptors): /healthz answers
        with ExitStack() as stack:
            for _ in range(300):
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=2))
            start = time.monotonic()
            assert _request(port, HEALTHZ, timeout=2) == (200, b"ok\n")
            assert time.monotonic() - start < 2

        # a Standard-Webhooks delivery is accepted once; its replay and a stale one are not
        now = int(time.time())
        assert _request(port, _post(_standard("msg-a", now)))[0] == 202
        assert _request(port, _post(_standard("msg-a", now))) == (401, b"unauthorized\n")
        assert _request(port, _post(_standard("msg-b", now - 3600))) == (401,
                                                                         b"unauthorized\n")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(ln.get("message") == "stopped" for ln in lines)
    assert SECRET not in text
