"""Signed revisions, checked with the real ssh-keygen and gpg against real signed commits."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.git.signing import SigningPolicy, verify


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    e = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
         "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.test", **(env or {})}
    return subprocess.run(["git", *args], cwd=repo, env=e, check=True, text=True,
                          capture_output=True).stdout.strip()


def _commit(repo: Path, name: str, *sign: str, env: dict[str, str] | None = None) -> str:
    (repo / name).write_text(name)
    _git(repo, "add", name)
    _git(repo, *sign, "commit", "-q", "-m", name, env=env)
    return _git(repo, "rev-parse", "HEAD")


def _ssh_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f",
                    str(path)], check=True)
    return path


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    return r


def test_ssh_signatures(tmp_path: Path, repo: Path) -> None:
    good, bad = _ssh_key(tmp_path / "good"), _ssh_key(tmp_path / "bad")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"dev@example.test {(tmp_path / 'good.pub').read_text()}")
    policy = SigningPolicy("ssh", allowed_signers=str(signers))

    def signed(key: Path, name: str) -> str:
        return _commit(repo, name, "-c", "gpg.format=ssh", "-c",
                       f"user.signingkey={key}.pub", "-c", "commit.gpgsign=true")

    ok = signed(good, "a")
    other = signed(bad, "b")
    unsigned = _commit(repo, "c")
    r = pygit2.Repository(str(repo))
    assert verify(r, ok, policy) == "dev@example.test"
    with pytest.raises(PermanentError, match="key not in"):
        verify(r, other, policy)
    with pytest.raises(PermanentError, match="is not signed"):
        verify(r, unsigned, policy)


@pytest.fixture()
def gnupg(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def _gpg_key(home: Path, uid: str) -> str:
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "",
                    "--quick-gen-key", uid, "ed25519", "sign", "never"], check=True,
                   capture_output=True)
    out = subprocess.run(["gpg", "--homedir", str(home), "--with-colons", "--list-keys", uid],
                         check=True, capture_output=True, text=True).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def test_gpg_signatures(tmp_path: Path, repo: Path, gnupg: Path) -> None:
    allowed = _gpg_key(gnupg, "Dev <dev@example.test>")
    other = _gpg_key(gnupg, "Other <other@example.test>")
    env = {"GNUPGHOME": str(gnupg)}
    ok = _commit(repo, "a", "-c", f"user.signingkey={allowed}", "-c", "commit.gpgsign=true",
                 env=env)
    by_other = _commit(repo, "b", "-c", f"user.signingkey={other}", "-c",
                       "commit.gpgsign=true", env=env)
    r = pygit2.Repository(str(repo))
    policy = SigningPolicy("gpg", gpg_home=str(gnupg), fingerprints=(allowed,))
    assert verify(r, ok, policy) == allowed
    with pytest.raises(PermanentError, match="not an allowed key"):
        verify(r, by_other, policy)
    empty = tmp_path / "empty-keyring"
    empty.mkdir(mode=0o700)
    with pytest.raises(PermanentError, match="bad or unknown"):
        verify(r, ok, SigningPolicy("gpg", gpg_home=str(empty)))
    subprocess.run(["gpgconf", "--homedir", str(empty), "--kill", "all"], check=False)
