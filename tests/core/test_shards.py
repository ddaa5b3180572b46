"""Consistent hashing with bounded loads (core/shards.py): every cell exactly one live
owner, loads within the bound, few moves when a shard leaves or joins, any input order."""

from __future__ import annotations

import math
import random

import pytest

from reconciler.core.shards import EPSILON, assign, loads

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
