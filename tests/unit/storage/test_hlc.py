"""HLC: every local stamp is strictly greater than everything issued or observed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storage.hlc import LOGICAL_MAX, HybridClock, Timestamp, pack


class FakeWall:
    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms


def test_stamps_increase_while_wall_clock_stands_still() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock("a", now_ms=wall)
    stamps = [clock.now() for _ in range(5)]
    assert [s.logical for s in stamps] == [0, 1, 2, 3, 4]
    assert all(s.wall_ms == 1_000 for s in stamps)


def test_stamps_increase_when_wall_clock_steps_backwards() -> None:
    wall = FakeWall(5_000)
    clock = HybridClock("a", now_ms=wall)
    first = clock.now()
    wall.now_ms = 1_000  # NTP step back
    second = clock.now()
    assert second.pack() > first.pack()
    assert second.wall_ms == 5_000


def test_wall_clock_moving_forward_resets_logical() -> None:
    wall = FakeWall(1_000)
    clock = HybridClock("a", now_ms=wall)
    clock.now()
    clock.now()
    wall.now_ms = 2_000
    assert clock.now() == Timestamp(2_000, 0, "a")


def test_logical_overflow_advances_wall() -> None:
    clock = HybridClock("a", last=pack(1_000, LOGICAL_MAX), now_ms=FakeWall(1_000))
    assert clock.now() == Timestamp(1_001, 0, "a")


def test_restart_from_persisted_last_never_goes_backwards() -> None:
    wall = FakeWall(10_000)
    clock = HybridClock("a", now_ms=wall)
    last = max(clock.now().pack() for _ in range(3))
    restarted = HybridClock("a", last=last, now_ms=FakeWall(9_000))  # clock behind after reboot
    assert restarted.now().pack() > last


def test_observed_remote_stamp_orders_later_local_events_after_it() -> None:
    clock = HybridClock("a", now_ms=FakeWall(1_000))
    remote = pack(50_000, 7)
    clock.observe(remote)
    assert clock.now().pack() > remote


def test_ties_between_nodes_are_broken_by_node_id() -> None:
    assert Timestamp(1, 0, "a") < Timestamp(1, 0, "b")
    assert Timestamp(1, 1, "a") > Timestamp(1, 0, "b")


@given(st.lists(st.tuples(st.integers(0, 2**40), st.booleans()), min_size=1, max_size=200))
def test_monotonic_under_any_wall_clock_and_observations(steps: list[tuple[int, bool]]) -> None:
    wall = FakeWall(0)
    clock = HybridClock("n", now_ms=wall)
    previous = 0
    for value, is_remote in steps:
        if is_remote:
            clock.observe(pack(value, 0))
            previous = max(previous, pack(value, 0))
        else:
            wall.now_ms = value
            stamp = clock.now().pack()
            assert stamp > previous
            previous = stamp


@given(st.integers(0, 2**47), st.integers(0, LOGICAL_MAX))
def test_pack_unpack_round_trip(wall_ms: int, logical: int) -> None:
    assert Timestamp.unpack(pack(wall_ms, logical), "x") == Timestamp(wall_ms, logical, "x")
