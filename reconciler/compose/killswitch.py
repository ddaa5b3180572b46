"""The kill switch: ``reconciler flag off NAME`` in a person's clone of the repository.

Owns: the sequence — bring the branch up to date, set the flag's groups to its default
variant (``core/flagedit``), check that the whole revision is still valid (the daemon
applies only valid revisions: an invalid one would leave the flag on), commit that one
file and push it. The daemon then plans the change like any other: a move down to the
default variant is a rollback, applied to every cell at once without waiting for bakes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.source import DirectorySource
from reconciler.adapters.git.workclone import WorkClone
from reconciler.core.flagedit import FlagEditError, turn_off
from reconciler.core.loader import load_repository

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?$")
_REMOTE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
TRAILER = "Reconciler-Kill-Switch"


class KillSwitchError(ValueError):
    """The flag was not turned off; the message says why (``problems``: the revision's
    errors when it would be invalid)."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclass(frozen=True)
class KillSwitch:
    """What the kill switch did."""

    flag: str
    variant: str
    groups: tuple[str, ...]
    commit: str | None
    pushed: bool

    def to_json(self) -> dict[str, object]:
        return {"flag": self.flag, "variant": self.variant, "groups": list(self.groups),
                "commit": self.commit, "pushed": self.pushed}


def _message(flag: str, variant: str, groups: Sequence[str]) -> str:
    return (f"Kill switch: flag {flag} {variant} in {', '.join(groups)}\n\n"
            f"Set by 'reconciler flag off'; the reconciler applies it to every cell at once, "
            f"without bakes.\n\n{TRAILER}: {flag}\n")


def flag_off(repo: str, flag: str, groups: Sequence[str] | None = None,
             remote: str = "origin", push: bool = True) -> KillSwitch:
    """Turn ``flag`` off for ``groups`` (None: all) in the clone at ``repo``."""
    if not _NAME.match(flag):
        raise KillSwitchError(f"{flag!r} is not a flag name")
    if not _REMOTE.match(remote):  # never an option to git push
        raise KillSwitchError(f"{remote!r} is not a remote name")
    try:
        clone = WorkClone(repo)
        top, branch = clone.top(), clone.branch()
        rel = f"flags/{flag}.yaml"
        path = top / rel
        if not path.is_file() or path.is_symlink():
            raise KillSwitchError(f"no flag {flag!r}: {rel} is not in {top}")
        if clone.dirty(rel):
            raise KillSwitchError(f"{rel} has uncommitted changes: commit or stash them")
        if push:
            clone.update(remote, branch)
        return _commit(clone, top, rel, flag, groups, remote, branch, push)
    except (PermanentError, FlagEditError) as e:
        raise KillSwitchError(str(e)) from None


def _commit(clone: WorkClone, top: Path, rel: str, flag: str, groups: Sequence[str] | None,
            remote: str, branch: str, push: bool) -> KillSwitch:
    before = (top / rel).read_text()
    off = turn_off(rel, before, groups)
    if not off.groups:
        return KillSwitch(flag, off.variant, (), None, False)
    (top / rel).write_text(off.text)
    result = load_repository(DirectorySource(top))
    if not result.ok:
        (top / rel).write_text(before)
        raise KillSwitchError("the revision would be invalid, so the reconciler would not "
                              "apply it; nothing committed", [str(p) for p in result.errors])
    sha = clone.commit_file(rel, _message(flag, off.variant, off.groups))
    if push:
        sha = clone.push(remote, branch)
    return KillSwitch(flag, off.variant, off.groups, sha, push)
