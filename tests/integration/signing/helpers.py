"""Shared by the signing tests: real ssh-keygen keys (the human's, the daemon's, a
stranger's), the operator's allowed signers, and commits made with the git CLI."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.git.sign import Signer
from reconciler.adapters.git.signing import SigningPolicy

DAEMON = ("reconciler", "bot@example.test")
HUMAN = ("dev", "dev@example.test")


def git(cwd: Path, *args: str, who: tuple[str, str] = HUMAN, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": who[0], "GIT_AUTHOR_EMAIL": who[1],
           "GIT_COMMITTER_NAME": who[0], "GIT_COMMITTER_EMAIL": who[1],
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check, text=True,
                          capture_output=True)


def ssh_key(path: Path, comment: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True)
    return path


@dataclass(frozen=True)
class Keys:
    human: Path
    daemon: Path
    stranger: Path
    allowed: Path  # the operator's allowed_signers: the human only
    daemon_signers: Path  # for git verify-commit: the daemon's key under its email

    def signer(self) -> Signer:
        return Signer(self.daemon, DAEMON[1])

    def policy(self) -> SigningPolicy:
        return SigningPolicy("ssh", str(self.allowed), daemon_key=self.signer().public_key,
                             daemon_principal=DAEMON[1])


def make_keys(tmp_path: Path) -> Keys:
    d = tmp_path / "keys"
    d.mkdir()
    human, daemon = ssh_key(d / "human", "dev"), ssh_key(d / "daemon", "reconciler")
    allowed = d / "allowed_signers"
    allowed.write_text(f"{HUMAN[1]} {(d / 'human.pub').read_text()}")
    daemon_signers = d / "daemon_signers"
    daemon_signers.write_text(f"{DAEMON[1]} {(d / 'daemon.pub').read_text()}")
    return Keys(human, daemon, ssh_key(d / "stranger", "x"), allowed, daemon_signers)


def commit(work: Path, files: dict[str, str], message: str, key: Path | None = None,
            who: tuple[str, str] = HUMAN) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git(work, "add", "-A")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}.pub", "-c",
            "commit.gpgsign=true"] if key else ["-c", "commit.gpgsign=false"]
    git(work, *sign, "commit", "-q", "-m", message, who=who)
    return git(work, "rev-parse", "HEAD").stdout.strip()


def git_verifies(repo: Path, sha: str, signers: Path) -> str:
    """``git verify-commit`` of ``sha`` against ``signers``: its report ("" if refused)."""
    out = git(repo, "-c", f"gpg.ssh.allowedSignersFile={signers}", "verify-commit", sha,
               check=False)
    return out.stderr if out.returncode == 0 else ""
