"""Signing the daemon's own commits with its SSH key, the one place commits are created.

Owns: the daemon's signing key (an unencrypted SSH private key, mode 0600, named by the
operator's ``repo.verify.signing_key``), its public key, signing a commit's raw content
with ``ssh-keygen -Y sign -n git`` exactly as ``git commit -S`` with ``gpg.format=ssh``
does (a ``gpgsig`` header Git and ``ssh-keygen -Y verify`` accept), and writing a commit —
signed when a Signer is given — on a branch only when the branch still points at the
commit's first parent (what libgit2 checks for ``create_commit`` with a ref).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import pygit2

from reconciler.adapters.errors import PermanentError

_REF_LOCK = threading.Lock()


def _ssh_keygen(argv: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[
        bytes]:
    try:
        return subprocess.run(["ssh-keygen", *argv], input=stdin, capture_output=True,
                              timeout=30, check=False)
    except FileNotFoundError:
        raise PermanentError("ssh-keygen is not installed; cannot sign commits") from None
    except subprocess.TimeoutExpired:
        raise PermanentError("ssh-keygen timed out") from None


def _reason(out: subprocess.CompletedProcess[bytes]) -> str:
    lines = [line.strip() for line in out.stderr.decode(errors="replace").splitlines()
             if line.strip() and not line.strip().startswith("@")]
    return "; ".join(lines[-2:]) or f"exit status {out.returncode}"


class Signer:
    """Signs commits with the SSH private key at ``key``. ``principal`` names the daemon
    in the implicit allowed-signers entry its own commits are verified against (the
    operator's ``git_author`` email)."""

    def __init__(self, key: str | Path, principal: str = "reconciler") -> None:
        self.key = Path(key)
        self.principal = principal
        out = _ssh_keygen(["-y", "-f", str(self.key)])
        public = out.stdout.decode().strip()
        if out.returncode != 0 or not public:
            raise PermanentError(f"signing_key {self.key}: not a usable SSH private key "
                                 f"(unencrypted, mode 0600): {_reason(out)}")
        #: ``<type> <base64>``: the key as an allowed-signers line carries it.
        self.public_key = " ".join(public.split()[:2])

    def __repr__(self) -> str:
        return f"Signer({str(self.key)!r})"

    def sign(self, content: str | bytes) -> str:
        """The armored SSH signature of ``content`` (namespace ``git``)."""
        data = content.encode() if isinstance(content, str) else content
        out = _ssh_keygen(["-Y", "sign", "-n", "git", "-f", str(self.key)], stdin=data)
        signature = out.stdout.decode()
        if out.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
            raise PermanentError(f"cannot sign with {self.key}: {_reason(out)}")
        return signature


def _branch(repo: pygit2.Repository, ref: str) -> str:
    """The branch ``ref`` names (``HEAD`` resolves to its branch, born or not)."""
    r = repo.references.get(ref)
    if r is not None and r.type == pygit2.enums.ReferenceType.SYMBOLIC:
        target = r.target
        return target if isinstance(target, str) else ref
    return ref


def make_commit(repo: pygit2.Repository, ref: str | None, author: pygit2.Signature,
                committer: pygit2.Signature, message: str, tree: pygit2.Oid,
                parents: Sequence[pygit2.Oid], signer: Signer | None = None) -> pygit2.Oid:
    """Write a commit (signed by ``signer`` when given) and, when ``ref`` is given, move
    that branch to it — only if the branch still points at the first parent (or does not
    exist yet for a root commit)."""
    if signer is None:
        oid: pygit2.Oid = repo.create_commit(ref, author, committer, message, tree,
                                             list(parents))
        return oid
    content: object = repo.create_commit_string(author, committer, message, tree,
                                                list(parents))
    if not isinstance(content, str):  # pygit2's stub says Oid; it returns the text
        raise PermanentError("pygit2 did not return the commit's content to sign")
    oid = repo.create_commit_with_signature(content, signer.sign(content))
    if ref is None:
        return oid
    with _REF_LOCK:
        name = _branch(repo, ref)
        current = repo.references.get(name)
        tip = current.resolve().target if current is not None else None
        expected = parents[0] if parents else None
        if tip != expected:
            raise PermanentError(f"{name} moved while committing (it is at {tip}, the new "
                                 f"commit's parent is {expected}); nothing was written")
        first = message.splitlines()[0] if message else ""
        repo.create_reference_direct(name, oid, True, message=f"commit: {first}")
    return oid
