"""Leadership on a single host: an exclusive ``flock`` on a file in the state directory.

Owns: taking the lock without blocking, recording the holder's pid in the file for
people, and releasing it; the kernel releases it when the holder dies (even kill -9).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from reconciler.adapters.errors import PermanentError


class FileLock:
    """An exclusive, non-blocking lock on ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if free (True), or report it held elsewhere (False)."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise PermanentError(f"{self.path}: cannot open lock file: {e.strerror}") from None
        os.fchmod(fd, 0o600)  # an older lock file may be 0644
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by the last holder (for messages)."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
