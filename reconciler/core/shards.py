"""Which live shard owns which cell: consistent hashing with bounded loads. Pure.

Owns: the assignment every replica computes alike from the same inputs (the cells and
the live shards), so no replica needs to ask another who runs a cell. Each shard has
``VNODES`` points on a 64-bit ring (sha256 of ``shard#i``); a cell goes to the first
shard clockwise from its own hash that still has room, the room of every shard being
``ceil((1 + epsilon) * cells / shards)`` (Mirrokni, Thorup, Zadimoghaddam: consistent
hashing with bounded loads). A shard leaving moves only its own cells and those that
overflow; cells are placed in hash order so the result does not depend on input order.

Not wired into the daemon yet (issue #19 item 4: the Leases per shard, executing only
one's own cells and the wave-level steps by one owner are not built).
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Mapping

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
