"""Versions and version ranges.

Owns: parsing and ordering of release versions (semantic versions ``MAJOR.MINOR.PATCH``
with an optional ``-prerelease``, a leading ``v`` allowed) and ranges such as
``">=2.0.0 <3.0.0"``. Pure; raises ``ValueError`` with a readable message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
_CLAUSE = re.compile(r"^(>=|<=|>|<|==|=)?\s*(\S+)$")


def _pre_key(pre: str) -> tuple[tuple[int, int | str], ...]:
    if not pre:
        return ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))


@dataclass(frozen=True, order=False)
class Version:
    """A semantic version; ``text`` keeps the spelling used in the repository."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    text: str = ""
    _key: tuple[int, int, int, int, tuple[tuple[int, int | str], ...]] = field(
        init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.major, self.minor, self.patch, 0 if self.pre else 1, _pre_key(self.pre))
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_hash", hash(key))

    @staticmethod
    def parse(text: str) -> Version:
        """Parse ``text``; raise ValueError when it is not a semantic version."""
        m = _VERSION.match(text.strip())
        if not m:
            raise ValueError(f"invalid version {text!r}: expected MAJOR.MINOR.PATCH")
        return Version(int(m[1]), int(m[2]), int(m[3]), m[4] or "", text.strip())

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Sort key: a pre-release sorts before its release."""
        return self._key

    def __lt__(self, other: Version) -> bool:
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        return self._key >= other._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}.{self.patch}" + (
            f"-{self.pre}" if self.pre else "")


@dataclass(frozen=True)
class Clause:
    """One comparison of a range, e.g. ``>=2.0.0``."""

    op: str
    version: Version

    def matches(self, v: Version) -> bool:
        """Whether ``v`` satisfies this comparison."""
        return {
            ">=": v >= self.version, "<=": v <= self.version, ">": v > self.version,
            "<": v < self.version, "==": v == self.version,
        }[self.op]


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of clauses, e.g. ``>=2.0.0 <3.0.0``; the empty text matches all."""

    clauses: tuple[Clause, ...]
    text: str
    _memo: dict[Version, bool] = field(default_factory=dict, repr=False, compare=False,
                                       hash=False)

    @staticmethod
    def parse(text: str) -> VersionRange:
        """Parse space- or comma-separated clauses; raise ValueError on a bad one."""
        clauses = []
        for part in text.replace(",", " ").split():
            m = _CLAUSE.match(part)
            if not m:
                raise ValueError(f"invalid version range clause {part!r}")
            op = "==" if m[1] in (None, "=") else m[1]
            clauses.append(Clause(op, Version.parse(m[2])))
        if not clauses:
            raise ValueError("empty version range")
        return VersionRange(tuple(clauses), text.strip())

    def contains(self, v: Version | None) -> bool:
        """Whether ``v`` is in the range (None, i.e. not deployed, never is)."""
        if v is None:
            return False
        hit = self._memo.get(v)
        if hit is None:
            hit = self._memo[v] = all(c.matches(v) for c in self.clauses)
        return hit

    def floor(self) -> Version | None:
        """The lowest version a ``>=``/``>``/``==`` clause admits, if any."""
        lows = [c.version for c in self.clauses if c.op in (">=", ">", "==")]
        return max(lows) if lows else None

    def __str__(self) -> str:
        return self.text
