"""Object lock merge laws (storage/lock_state.py), checked like the LWW rule's.

Commutative, associative, idempotent; protection that nobody was allowed to lift (COMPLIANCE
dates, holds a removal did not see) never decreases through a merge; the wire form round-trips.
"""

from __future__ import annotations

import random
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.lock_state import (
    BadLockState,
    LockState,
    Retention,
    from_json,
    loads,
    merge,
)
from storage.lww import Stamp

ORIGINS = ["node-a", "node-b", "node-c"]
stamps = st.builds(Stamp, st.integers(0, 2**40), st.sampled_from(ORIGINS))
times = st.integers(0, 10_000)


@st.composite
def states(draw: st.DrawFn) -> LockState:
    """A state reached by a random history of lock changes on one site."""
    state = LockState()
    for _ in range(draw(st.integers(0, 6))):
        change = draw(st.sampled_from(["compliance", "governance", "hold", "release"]))
        if change == "compliance":
            state = state.with_compliance(draw(times))
        elif change == "governance":
            state = state.with_governance(draw(stamps), draw(st.none() | times))
        elif change == "hold":
            state = state.with_hold(draw(stamps))
        else:
            state = state.without_hold()
    return state


@given(states(), states())
def test_merge_is_commutative(a: LockState, b: LockState) -> None:
    assert merge(a, b) == merge(b, a)


@given(states(), states(), states())
def test_merge_is_associative(a: LockState, b: LockState, c: LockState) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(states(), states())
def test_merge_is_idempotent(a: LockState, b: LockState) -> None:
    assert merge(a, a) == a
    assert merge(merge(a, b), b) == merge(a, b)


@given(st.lists(states(), max_size=6), st.randoms())
def test_any_order_with_repeats_ends_in_the_same_state(
    received: list[LockState], rng: random.Random
) -> None:
    shuffled = received + received[: len(received) // 2]
    rng.shuffle(shuffled)
    assert reduce(merge, shuffled, LockState()) == reduce(merge, received, LockState())


@given(states(), states(), times)
def test_compliance_and_unseen_holds_never_decrease(a: LockState, b: LockState, at: int) -> None:
    merged = merge(a, b)
    for side in (a, b):
        if side.compliance_until_ms is not None:
            assert merged.compliance_until_ms is not None
            assert merged.compliance_until_ms >= side.compliance_until_ms
        if side.compliance_until_ms is not None and side.compliance_until_ms > at:
            assert not merged.may_delete(at, bypass_governance=True)


@given(states(), states())
def test_a_hold_is_lifted_only_by_a_removal_that_saw_it(a: LockState, b: LockState) -> None:
    merged = merge(a, b)
    unseen_on_a = any(hlc > merged.hold_seen.get(origin, -1) for origin, hlc in a.hold_set.items())
    if unseen_on_a:
        assert merged.legal_hold
        assert not merged.may_delete(2**62, bypass_governance=True)


def test_a_hold_set_on_one_site_survives_a_removal_on_the_other_that_did_not_know_it() -> None:
    on_a = LockState().with_hold(Stamp(10, "node-a"))
    on_b = LockState().with_hold(Stamp(5, "node-b")).without_hold()  # B knew only its own
    assert merge(on_a, on_b).legal_hold
    both_know = merge(on_a, on_b).without_hold()  # removed after both know of it
    assert not both_know.legal_hold
    assert not merge(both_know, on_a).legal_hold  # and A's old state does not bring it back


def test_a_later_hold_after_a_removal_holds_again() -> None:
    state = LockState().with_hold(Stamp(10, "node-a")).without_hold()
    assert state.with_hold(Stamp(20, "node-a")).legal_hold


def test_an_extension_on_one_site_ends_at_the_later_date() -> None:
    base = LockState().with_compliance(1_000)
    extended = base.with_compliance(5_000)
    assert merge(base, extended).retention() == Retention("COMPLIANCE", 5_000)
    governed = LockState().with_governance(Stamp(1, "node-a"), 1_000)
    longer = governed.with_governance(Stamp(2, "node-b"), 9_000)
    assert merge(governed, longer).retention() == Retention("GOVERNANCE", 9_000)


def test_an_allowed_governance_removal_wins_everywhere() -> None:
    governed = LockState().with_governance(Stamp(1, "node-a"), 9_000)
    removed = governed.with_governance(Stamp(2, "node-b"), None)  # with bypass, on B
    assert merge(governed, removed).retention() is None
    assert merge(governed, removed).may_delete(0)


def test_what_may_be_deleted_when() -> None:
    compliance = LockState().with_compliance(1_000)
    assert not compliance.may_delete(999, bypass_governance=True)
    assert compliance.may_delete(1_000)
    governance = LockState().with_governance(Stamp(1, "node-a"), 1_000)
    assert not governance.may_delete(999)
    assert governance.may_delete(999, bypass_governance=True)
    held = LockState().with_hold(Stamp(1, "node-a"))
    assert not held.may_delete(10**15, bypass_governance=True)
    assert LockState().may_delete(0)


@given(states())
def test_the_wire_form_round_trips(state: LockState) -> None:
    assert loads(state.dumps()) == state
    assert from_json(state.to_json()) == state


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"mode": "COMPLIANCE"},
        {"compliance_until_ms": "soon"},
        {"compliance_until_ms": True},
        {"governance": [1, "node-a"]},
        {"governance": [1, 2, 3]},
        {"hold_set": {"node-a": "x"}},
        {"hold_seen": []},
    ],
)
def test_a_malformed_state_is_refused(document: object) -> None:
    with pytest.raises(BadLockState):
        from_json(document)
