"""LWW laws: order-independence, idempotence, and no resurrection by an older put."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from storage.lww import Stamp, merge, wins

stamps = st.builds(Stamp, st.integers(0, 2**40), st.sampled_from(["node-a", "node-b", "node-c"]))


def apply_all(changes: list[Stamp]) -> Stamp | None:
    state: Stamp | None = None
    for change in changes:
        if wins(change, state):
            state = change
    return state


@given(st.lists(stamps, max_size=20), st.randoms())
def test_any_order_with_repeats_ends_in_the_same_state(
    changes: list[Stamp], rng: random.Random
) -> None:
    shuffled = changes + changes[: len(changes) // 2]
    rng.shuffle(shuffled)
    assert apply_all(shuffled) == apply_all(changes) == merge(changes)


@given(stamps)
def test_applying_twice_is_applying_once(change: Stamp) -> None:
    assert apply_all([change, change]) == change
    assert not wins(change, change)


def test_an_older_put_never_resurrects_a_delete() -> None:
    put, delete = Stamp(100, "node-a"), Stamp(200, "node-b")
    assert apply_all([delete, put]) == delete


def test_equal_hlc_is_decided_by_node_id_whatever_the_operation() -> None:
    from_a, from_b = Stamp(500, "node-a"), Stamp(500, "node-b")
    assert wins(from_b, from_a)
    assert not wins(from_a, from_b)
