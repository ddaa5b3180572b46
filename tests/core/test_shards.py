"""Consistent hashing with bounded loads (core/shards.py): every cell exactly one live
owner, loads within the bound, few moves when a shard leaves or joins, any input order."""

from __future__ import annotations

import math
import random

import pytest

from reconciler.core.shards import EPSILON, ShardMap, assign, loads, shard_targets
from reconciler.core.statusdocs import owned_documents

CELLS = [f"cell-{i:04d}" for i in range(1000)]


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 16])
def test_every_cell_one_live_owner_within_the_bound(shards: int) -> None:
    live = [f"shard-{i}" for i in range(shards)]
    out = assign(CELLS, live)
    assert set(out) == set(CELLS)
    assert set(out.values()) <= set(live)
    bound = math.ceil((1 + EPSILON) * len(CELLS) / shards)
    assert max(loads(out).values()) <= bound


def test_one_shard_owns_everything() -> None:
    assert set(assign(CELLS, ["only"]).values()) == {"only"}


def test_no_live_shard_no_owner() -> None:
    assert assign(CELLS, []) == {}


def test_input_order_does_not_matter() -> None:
    shuffled = CELLS[:]
    random.Random(7).shuffle(shuffled)
    live = ["a", "b", "c"]
    assert assign(shuffled, list(reversed(live))) == assign(CELLS, live)


def test_a_shard_leaving_moves_few_other_cells() -> None:
    """The dead shard's cells move; of the others' only those the bound pushes along
    (far fewer than a modulo hash would move: about two thirds of all cells)."""
    before = assign(CELLS, ["a", "b", "c"])
    after = assign(CELLS, ["a", "b"])
    assert set(after.values()) == {"a", "b"}
    moved_others = [c for c in CELLS if before[c] != "c" and after[c] != before[c]]
    assert len(moved_others) < 0.15 * len(CELLS), len(moved_others)


def test_a_shard_joining_takes_cells_from_everyone_but_not_most() -> None:
    before = assign(CELLS, ["a", "b"])
    after = assign(CELLS, ["a", "b", "c"])
    moved = [c for c in CELLS if after[c] != before[c]]
    assert all(after[c] == "c" for c in moved) or len(moved) < 0.5 * len(CELLS)
    assert len(moved) < 0.5 * len(CELLS)


# -- the shard map: replicas, shards, cells ------------------------------------------


@pytest.mark.parametrize(("count", "members", "most"), [
    (16, ["r1"], 16), (16, ["r1", "r2", "r3"], 6), (3, ["r1", "r2", "r3"], 1),
    (6, ["r1", "r2", "r3"], 2), (2, ["r1", "r2", "r3"], 1), (2, ["r1", "r2"], 1)])
def test_shard_targets_spread_the_shards_over_the_members(count: int, members: list[str],
                                                         most: int) -> None:
    targets = shard_targets(count, members)
    assert set(targets) == set(range(count))
    assert set(targets.values()) <= set(members)
    assert max(loads({str(i): r for i, r in targets.items()}).values()) <= most
    assert shard_targets(count, list(reversed(members))) == targets


def test_no_member_no_target() -> None:
    assert shard_targets(4, []) == {}


def test_every_cell_has_exactly_one_replica_and_one_leader() -> None:
    shards = ShardMap(6, {0: "r1", 1: "r2", 2: "r3", 3: "r1", 4: "r2", 5: "r3"})
    owners = shards.owners(CELLS)
    assert set(owners) == set(CELLS) and set(owners.values()) == {"r1", "r2", "r3"}
    checks = {r: shards.owns(r, CELLS) for r in ("r1", "r2", "r3")}
    for cell in CELLS:
        assert [r for r, owns in checks.items() if owns(cell)] == [owners[cell]]
    assert [r for r, owns in checks.items() if owns(None)] == ["r1"]
    assert shards.leader == "r1" and shards.shards_of("r2") == (1, 4)


def test_a_dead_replicas_cells_move_to_the_live_shards_only() -> None:
    """While its Leases are not taken over yet, a dead replica's shards are not live:
    their cells go to the live shards at once; nobody else's cells move much."""
    full = ShardMap(6, {0: "r1", 1: "r2", 2: "r3", 3: "r1", 4: "r2", 5: "r3"})
    without = ShardMap(6, {0: "r1", 1: "r2", 3: "r1", 4: "r2"})
    before, after = full.owners(CELLS), without.owners(CELLS)
    assert set(after.values()) == {"r1", "r2"}
    moved = [c for c in CELLS if before[c] != "r3" and after[c] != before[c]]
    assert len(moved) < 0.2 * len(CELLS), len(moved)


def test_nothing_held_nothing_owned() -> None:
    shards = ShardMap(4)
    assert shards.owners(CELLS) == {} and shards.leader is None
    owns = shards.owns("r1", CELLS)
    assert not owns(None) and not owns(CELLS[0])


def test_status_documents_split_between_the_replicas() -> None:
    docs: dict[str, dict[str, object]] = {
        "status/desired.yaml": {}, "status/rollouts/shop.yaml": {},
        "status/cells/c1.yaml": {}, "status/cells/c2.yaml": {}}
    shards = ShardMap(2, {0: "r1", 1: "r2"})
    split = {r: owned_documents(docs, "status", shards.owns(r, ["c1", "c2"]))
             for r in ("r1", "r2")}
    assert sorted(p for d in split.values() for p in d) == sorted(docs)
    assert {"status/desired.yaml", "status/rollouts/shop.yaml"} <= set(split["r1"])
