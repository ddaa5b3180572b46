"""Verifying that a desired revision is signed by an allowed SSH or GPG key.

Owns: extracting a commit's signature with pygit2 and checking it with the tools Git
itself uses — ``ssh-keygen -Y`` against an allowed-signers file, or ``gpg --verify``
against a keyring (optionally restricted to listed fingerprints). An unsigned or wrongly
signed revision is a PermanentError that says which. Also: telling whether a commit
carries the daemon's own SSH signature (its public key, trusted implicitly under the
``git_author`` email, whatever ``kind`` the human commits are checked with).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError


@dataclass(frozen=True)
class SigningPolicy:
    """``kind`` is ``ssh`` (``allowed_signers`` file) or ``gpg`` (``gpg_home`` keyring).
    ``daemon_key`` (``<type> <base64>``) is the public half of the daemon's signing key:
    commits it signed are the daemon's own, named ``daemon_principal``."""

    kind: str
    allowed_signers: str | None = None
    gpg_home: str | None = None
    fingerprints: Sequence[str] = field(default_factory=tuple)
    daemon_key: str | None = None
    daemon_principal: str = "reconciler"


def _signature(repo: pygit2.Repository, sha: str) -> tuple[bytes, bytes]:
    commit = repo[sha]
    if not isinstance(commit, pygit2.Commit):
        raise PermanentError(f"{sha[:12]}: not a commit")
    sig, data = commit.gpg_signature
    if not sig:
        raise PermanentError(f"revision {sha[:12]} is not signed")
    return sig, data


def principal_name(name: str) -> str:
    """``name`` as an allowed-signers principal (``reconciler`` when it has characters
    that file gives a meaning to)."""
    return name if re.fullmatch(r"[^\s,\"'*?!#]+", name) else "reconciler"


def signed_by_daemon(repo: pygit2.Repository, sha: str, policy: SigningPolicy) -> bool:
    """True when ``sha`` carries a valid SSH signature by the daemon's own key."""
    if not policy.daemon_key:
        return False
    commit = repo[sha]
    if not isinstance(commit, pygit2.Commit):
        return False
    sig, data = commit.gpg_signature
    if not sig or b"BEGIN SSH SIGNATURE" not in sig:
        return False
    with tempfile.TemporaryDirectory() as d:
        signers, sig_path = Path(d, "allowed_signers"), Path(d, "commit.sig")
        principal = principal_name(policy.daemon_principal)
        signers.write_text(f'{principal} namespaces="git" {policy.daemon_key}\n')
        sig_path.write_bytes(sig)
        ok = _run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", principal,
                   "-n", "git", "-s", str(sig_path)], stdin=data)
    return ok.returncode == 0


def _run(argv: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=30, check=False)
    except FileNotFoundError:
        raise PermanentError(f"{argv[0]} is not installed; cannot verify signatures") from None


def _verify_ssh(policy: SigningPolicy, sha: str, sig: bytes, data: bytes) -> str:
    if not policy.allowed_signers:
        raise PermanentError("ssh signature verification needs an allowed_signers file")
    with tempfile.NamedTemporaryFile(suffix=".sig") as f:
        f.write(sig)
        f.flush()
        found = _run(["ssh-keygen", "-Y", "find-principals", "-f", policy.allowed_signers,
                      "-s", f.name])
        principals = found.stdout.decode().split()
        if found.returncode != 0 or not principals:
            raise PermanentError(f"revision {sha[:12]} is signed by a key not in "
                                 f"{policy.allowed_signers}")
        ok = _run(["ssh-keygen", "-Y", "verify", "-f", policy.allowed_signers, "-I",
                   principals[0], "-n", "git", "-s", f.name], stdin=data)
    if ok.returncode != 0:
        raise PermanentError(f"revision {sha[:12]}: bad SSH signature for {principals[0]}")
    return principals[0]


def _verify_gpg(policy: SigningPolicy, sha: str, sig: bytes, data: bytes) -> str:
    with tempfile.TemporaryDirectory() as d:
        sig_path, data_path = Path(d, "sig.asc"), Path(d, "data")
        sig_path.write_bytes(sig)
        data_path.write_bytes(data)
        argv = ["gpg", "--batch", "--no-tty", "--status-fd", "1"]
        if policy.gpg_home:
            argv += ["--homedir", policy.gpg_home]
        out = _run([*argv, "--verify", str(sig_path), str(data_path)])
    valid = [line.split()[2] for line in out.stdout.decode().splitlines()
             if line.startswith("[GNUPG:] VALIDSIG ")]
    if out.returncode != 0 or not valid:
        raise PermanentError(f"revision {sha[:12]}: bad or unknown GPG signature")
    allowed = {f.replace(" ", "").upper() for f in policy.fingerprints}
    if allowed and valid[0].upper() not in allowed:
        raise PermanentError(f"revision {sha[:12]} is signed by {valid[0]}, "
                             "which is not an allowed key")
    return valid[0]


def verify(repo: pygit2.Repository, sha: str, policy: SigningPolicy) -> str:
    """Check ``sha``'s signature; the signer (principal or fingerprint) when allowed."""
    sig, data = _signature(repo, sha)
    if policy.kind == "ssh":
        return _verify_ssh(policy, sha, sig, data)
    if policy.kind == "gpg":
        return _verify_gpg(policy, sha, sig, data)
    raise PermanentError(f"unknown signature kind {policy.kind!r} (ssh or gpg)")
