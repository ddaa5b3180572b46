"""Which live shard owns which cell: consistent hashing with bounded loads. Pure.

Owns: the assignment every replica computes alike from the same inputs (the cells and
the live shards), so no replica needs to ask another who runs a cell. Each shard has
``VNODES`` points on a 64-bit ring (sha256 of ``shard#i``); a cell goes to the first
shard clockwise from its own hash that still has room, the room of every shard being
``ceil((1 + epsilon) * cells / shards)`` (Mirrokni, Thorup, Zadimoghaddam: consistent
hashing with bounded loads). A shard leaving moves only its own cells and those that
overflow; cells are placed in hash order so the result does not depend on input order.

Also which replica should hold which shard (the same hashing over the live members)
and ``ShardMap``: the live shards' holders as read from their Leases, from which every
replica derives alike who runs each cell and who runs the wave-level steps.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

#: Points per shard on the ring (more: a more even spread before the bound applies).
VNODES = 64
#: How far above the mean a shard's load may go (0.25: at most 25% more cells).
EPSILON = 0.25


def _point(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def assign(cells: Iterable[str], shards: Iterable[str], epsilon: float = EPSILON,
           vnodes: int = VNODES) -> dict[str, str]:
    """cell -> shard for every cell over the live ``shards`` (empty: no owner at all)."""
    live = sorted(set(shards))
    names = sorted(set(cells), key=lambda c: (_point(c), c))
    if not live:
        return {}
    ring = sorted((_point(f"{s}#{i}"), s) for s in live for i in range(vnodes))
    points = [p for p, _ in ring]
    room = math.ceil((1 + epsilon) * len(names) / len(live)) if names else 0
    load = dict.fromkeys(live, 0)
    out: dict[str, str] = {}
    for cell in names:
        i = bisect.bisect_left(points, _point(cell)) % len(ring)
        while load[ring[i][1]] >= room:
            i = (i + 1) % len(ring)
        shard = ring[i][1]
        load[shard] += 1
        out[cell] = shard
    return out


def loads(assignment: Mapping[str, str]) -> dict[str, int]:
    """shard -> how many cells it owns."""
    out: dict[str, int] = {}
    for shard in assignment.values():
        out[shard] = out.get(shard, 0) + 1
    return out


def shard_name(index: int) -> str:
    """The ring name of shard ``index`` (``shard-0``, ``shard-1``, ...)."""
    return f"shard-{index}"


def shard_targets(count: int, members: Iterable[str]) -> dict[int, str]:
    """shard index -> the live member that should hold it, as even as can be (load
    bound ``ceil(count / members)``: with three members and six shards, two each);
    empty without members."""
    by_name = assign((shard_name(i) for i in range(count)), members, epsilon=0.0)
    return {i: by_name[shard_name(i)] for i in range(count) if shard_name(i) in by_name}


@dataclass(frozen=True)
class ShardMap:
    """Who holds which shard (live holders only: an expired Lease holds nothing)."""

    count: int
    holders: Mapping[int, str] = field(default_factory=dict)

    def owners(self, cells: Iterable[str]) -> dict[str, str]:
        """cell -> the replica running it: the cells hashed over the live shards, each
        shard's cells run by its holder (no live shard: no owner)."""
        by_name = {shard_name(i): r for i, r in self.holders.items()}
        return {c: by_name[s] for c, s in assign(cells, by_name).items()}

    @property
    def leader(self) -> str | None:
        """The holder of the lowest live shard: it alone runs the wave-level steps
        (bake records, failure records, revert commits) and writes the fleet's status."""
        return self.holders[min(self.holders)] if self.holders else None

    def shards_of(self, replica: str) -> tuple[int, ...]:
        return tuple(sorted(i for i, r in self.holders.items() if r == replica))

    def replicas(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.holders.values())))

    def owns(self, replica: str, cells: Iterable[str]) -> Callable[[str | None], bool]:
        """Whether ``replica`` runs a cell's steps (None: the wave-level steps)."""
        mine = frozenset(c for c, r in self.owners(cells).items() if r == replica)
        lead = self.leader == replica

        def check(cell: str | None) -> bool:
            return lead if cell is None else cell in mine
        return check
