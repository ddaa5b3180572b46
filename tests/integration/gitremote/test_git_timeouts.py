"""A remote that accepts the connection and never answers (a hung proxy, a stuck forge):
the fetch gives up with a temporary error instead of stalling the daemon's loop forever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.adapters.errors import TemporaryError
from reconciler.adapters.git import remote as remote_mod
from reconciler.adapters.git.remote import RemoteRepo

pytestmark = pytest.mark.git


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts connections, reads nothing and sends nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    srv.close()


def test_a_remote_that_never_answers_times_out(silent_port: int, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: clone_repository blocked forever (no libgit2 server timeout was set)."""
    monkeypatch.setattr(remote_mod, "IO_TIMEOUT", 1.5)
    remote = RemoteRepo(f"http://127.0.0.1:{silent_port}/fleet.git", tmp_path / "cache")
    started = time.monotonic()
    with pytest.raises(TemporaryError, match=r"127\.0\.0\.1"):
        remote.sync()
    assert time.monotonic() - started < 30
