"""node/console/throttle.py: failed sign-ins slow the next ones, per client and per key."""

from __future__ import annotations

from node.console.throttle import SignInThrottle


def fail(throttle: SignInThrottle, times: int, client: str, key: str, at: float) -> None:
    for _ in range(times):
        throttle.failed(client, key, at)


def test_a_few_failures_are_free_then_each_one_doubles_the_wait() -> None:
    t = SignInThrottle(free_failures=3)
    fail(t, 2, "10.0.0.1", "alice", 100.0)
    assert t.wait_s("10.0.0.1", "alice", 100.0) == 0
    t.failed("10.0.0.1", "alice", 100.0)  # third: 2**0 = 1 s
    assert t.wait_s("10.0.0.1", "alice", 100.0) == 1.0
    assert t.wait_s("10.0.0.1", "alice", 101.0) == 0
    t.failed("10.0.0.1", "alice", 101.0)  # fourth: 2 s
    assert t.wait_s("10.0.0.1", "alice", 101.5) == 1.5
    fail(t, 4, "10.0.0.1", "alice", 103.0)  # eighth: 2**5 = 32 s
    assert t.wait_s("10.0.0.1", "alice", 103.0) == 32.0


def test_spreading_guesses_over_addresses_or_keys_does_not_help() -> None:
    t = SignInThrottle(free_failures=3)
    for n in range(5):
        t.failed(f"10.0.0.{n}", "alice", 100.0)  # one key, many addresses
    assert t.wait_s("10.9.9.9", "alice", 100.0) == 4.0
    assert t.wait_s("10.9.9.9", "bob", 100.0) == 0
    for key in ("k1", "k2", "k3", "k4"):
        t.failed("10.1.1.1", key, 200.0)  # one address, many keys
    assert t.wait_s("10.1.1.1", "someone-else", 200.0) == 2.0


def test_the_delay_is_capped_and_forgotten_after_the_window() -> None:
    t = SignInThrottle(free_failures=1, max_delay_s=10.0, window_s=60.0)
    fail(t, 30, "c", "k", 0.0)
    assert t.wait_s("c", "k", 0.0) == 10.0
    assert t.wait_s("c", "k", 61.0) == 0
    t.failed("c", "k", 61.0)  # a new window: counting starts over
    assert t.wait_s("c", "k", 61.0) == 1.0


def test_success_clears_the_client_and_the_key() -> None:
    t = SignInThrottle(free_failures=1)
    fail(t, 5, "c", "k", 0.0)
    assert t.wait_s("c", "k", 0.0) > 0
    t.succeeded("c", "k")
    assert t.wait_s("c", "k", 0.0) == 0


def test_memory_is_bounded_oldest_forgotten_first() -> None:
    t = SignInThrottle(free_failures=1, max_tracked=3)
    for n in range(5):
        t.failed(f"c{n}", f"k{n}", float(n))
    assert t.wait_s("c0", "k0", 4.0) == 0  # forgotten
    assert t.wait_s("c4", "k4", 4.0) == 1.0
    assert len(t._by_client) == len(t._by_key) == 3
