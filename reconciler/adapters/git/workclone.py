"""A person's clone of the desired-state repository, driven with their own ``git``.

Owns: what the kill switch needs from a working clone — its top directory, bringing the
current branch up to date with its remote, committing one file, and pushing (rebasing
over what others pushed meanwhile, a few times). The person's own git runs it, so their
identity, signing settings, hooks and credentials apply, as for any commit they make.
Every failure is a PermanentError naming the git command and its message.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.errors import PermanentError

_TIMEOUT = 60


@dataclass(frozen=True)
class WorkClone:
    """The clone whose working tree contains ``path``."""

    path: str

    def git(self, *args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", self.path, *args], capture_output=True,
                                 text=True, timeout=_TIMEOUT, check=False)
        except FileNotFoundError:
            raise PermanentError("git is not installed") from None
        except subprocess.TimeoutExpired:
            raise PermanentError(f"git {args[0]} took over {_TIMEOUT}s") from None
        if out.returncode != 0:
            why = (out.stderr or out.stdout).strip().splitlines()
            raise PermanentError(f"git {args[0]} failed: {why[-1] if why else out.returncode}")
        return out.stdout.strip()

    def top(self) -> Path:
        return Path(self.git("rev-parse", "--show-toplevel"))

    def branch(self) -> str:
        name = self.git("rev-parse", "--abbrev-ref", "HEAD")
        if name == "HEAD":
            raise PermanentError("the clone is on a detached HEAD: check out a branch")
        return name

    def dirty(self, rel: str) -> bool:
        return bool(self.git("status", "--porcelain", "--", rel))

    def update(self, remote: str, branch: str) -> None:
        """Rebase the branch on the remote's (what others pushed)."""
        self.git("pull", "-q", "--rebase", remote, branch)

    def commit_file(self, rel: str, message: str) -> str:
        """Commit the working tree's ``rel`` alone; the new commit id."""
        self.git("add", "--", rel)
        self.git("commit", "-q", "-m", message, "--", rel)
        return self.git("rev-parse", "HEAD")

    def push(self, remote: str, branch: str, attempts: int = 5) -> str:
        """Push the branch, rebasing over the remote's new commits when refused; the
        commit id pushed."""
        for attempt in range(attempts):
            try:
                self.git("push", "-q", remote, f"HEAD:{branch}")
                return self.git("rev-parse", "HEAD")
            except PermanentError:
                if attempt == attempts - 1:
                    raise
                self.update(remote, branch)
        raise PermanentError("push failed")  # pragma: no cover - the loop returns or raises
