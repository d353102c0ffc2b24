"""The state the workers of one node share (storage/workers.py) and the view each keeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storage.cache import LatestCache
from storage.manifest import Kind, Manifest
from storage.workers import (
    RING_CAPACITY,
    SharedState,
    Touched,
    create_shared_file,
    digests_of,
    key_digest,
    worker_died,
)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[SharedState, SharedState]:
    create_shared_file(tmp_path)
    return SharedState(tmp_path, 0), SharedState(tmp_path, 1)


def publish(state: SharedState, touched: Touched) -> Touched | None:
    state.lock_commits()
    try:
        return state.publish(touched)
    finally:
        state.unlock_commits()


def test_what_one_worker_publishes_the_other_polls_once(
    pair: tuple[SharedState, SharedState],
) -> None:
    one, other = pair
    assert other.poll() is None
    keys = (key_digest("b", "k1"), key_digest("b", "k2"))
    assert publish(one, Touched(keys)) is None
    assert other.poll() == Touched(keys)
    assert other.poll() is None  # consumed
    assert one.poll() is None  # a worker does not hear its own commits back


def test_bucket_wide_and_tag_news_travel_as_flags(pair: tuple[SharedState, SharedState]) -> None:
    one, other = pair
    publish(one, Touched(buckets=True, tagged=True))
    assert other.poll() == Touched((), buckets=True, tagged=True)


def test_publishing_returns_what_others_committed_first(
    pair: tuple[SharedState, SharedState],
) -> None:
    one, other = pair
    first = (key_digest("b", "from-one"),)
    publish(one, Touched(first))
    # The other worker commits before it polled: it must still forget what came first.
    assert publish(other, Touched((key_digest("b", "from-other"),))) == Touched(first)
    assert other.poll() is None
    assert one.poll() == Touched((key_digest("b", "from-other"),))


def test_a_worker_too_far_behind_forgets_everything(pair: tuple[SharedState, SharedState]) -> None:
    one, other = pair
    digests = tuple(key_digest("b", str(n)) for n in range(RING_CAPACITY + 1))
    publish(one, Touched(digests))
    assert other.poll() == Touched(everything=True)
    assert other.poll() is None


def test_publishing_needs_the_commit_lock(pair: tuple[SharedState, SharedState]) -> None:
    with pytest.raises(AssertionError):
        pair[0].publish(Touched())


def waits_for_the_commit_lock(holder: SharedState, action: Callable[[], None]) -> bool:
    """Does ``action`` (in a thread) block while ``holder`` commits, and end after?"""
    holder.lock_commits()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (action(), done.set()))
    thread.start()
    time.sleep(0.1)
    blocked = not done.is_set()
    holder.unlock_commits()
    thread.join(5)
    return blocked and done.is_set()


def test_the_commit_lock_excludes_the_other_worker(pair: tuple[SharedState, SharedState]) -> None:
    one, other = pair
    assert waits_for_the_commit_lock(one, lambda: (other.lock_commits(), other.unlock_commits()))


def test_passing_a_commit_in_progress_waits_for_its_end(
    pair: tuple[SharedState, SharedState],
) -> None:
    one, other = pair
    assert waits_for_the_commit_lock(one, other.pass_commit_in_progress)


def test_floors_gate_and_writes_are_seen_by_every_worker(
    tmp_path: Path, pair: tuple[SharedState, SharedState]
) -> None:
    one, other = pair
    one.set_floor(7)
    assert other.other_floors() == [7] and one.other_floors() == []
    one.set_floor(None)
    assert other.other_floors() == []
    one.set_floor(0)  # segment 0 is a floor too, not "none"
    assert other.other_floors() == [0]
    assert not other.gate_closed
    one.set_gate_closed(True)
    assert other.gate_closed
    one.set_writes_in_flight(2)
    other.set_writes_in_flight(3)
    assert one.writes_in_flight() == 5
    worker_died(tmp_path, 0)  # the supervisor: a dead worker holds nothing
    assert other.other_floors() == [] and other.writes_in_flight() == 3
    assert other.restarts == 1


def test_the_newest_keys_generation_any_worker_loaded_is_seen_by_all(
    pair: tuple[SharedState, SharedState],
) -> None:
    first, second = pair
    assert second.keys_generation() == 0
    first.note_keys_generation(3)
    assert second.keys_generation() == 3
    second.note_keys_generation(2)  # a worker that loaded older keys does not lower it
    assert first.keys_generation() == 3


def test_digests_of_a_batch(pair: tuple[SharedState, SharedState]) -> None:
    keys, buckets = digests_of([("b", "k"), ("", ""), ("b", None)])
    assert keys == (key_digest("b", "k"),) and buckets


def version(bucket: str, key: str) -> Manifest:
    return Manifest(Kind.OBJECT, bucket, key, "v", hlc=1, origin="n", size=0, etag="e",
                    last_modified_ms=0)  # fmt: skip


def test_the_latest_cache_forgets_by_digest() -> None:
    cache = LatestCache(by_digest=True)
    cache.fill(version("b", "k1"), cache.epoch)
    cache.fill(version("b", "k2"), cache.epoch)
    epoch = cache.epoch
    cache.forget_digests([key_digest("b", "k1"), key_digest("b", "unknown")])
    assert cache.get("b", "k1") is None and cache.get("b", "k2") is not None
    assert cache.epoch == epoch + 1  # a read that started before must not fill
