"""LatestCache: commits invalidate, and a reader racing a commit cannot refill a stale entry."""

from __future__ import annotations

from storage.cache import LatestCache
from storage.manifest import Kind, Manifest


def version(key: str, etag: str) -> Manifest:
    return Manifest(Kind.OBJECT, "b", key, "null", 1, "n", 0, etag, 0)


def test_fill_then_get() -> None:
    cache = LatestCache()
    cache.fill(version("k", "v1"), cache.epoch)
    assert cache.get("b", "k") == version("k", "v1")


def test_commit_invalidates_the_touched_key_only() -> None:
    cache = LatestCache()
    cache.fill(version("k", "v1"), cache.epoch)
    cache.fill(version("other", "o1"), cache.epoch)
    cache.invalidate([("b", "k")])
    assert cache.get("b", "k") is None
    assert cache.get("b", "other") is not None


def test_bucket_wide_mutation_clears_everything() -> None:
    cache = LatestCache()
    cache.fill(version("k", "v1"), cache.epoch)
    cache.invalidate([("b", None)])
    assert cache.get("b", "k") is None


def test_reader_that_raced_a_commit_does_not_fill() -> None:
    cache = LatestCache()
    epoch_before_read = cache.epoch
    stale = version("k", "v1")  # what the slow database read returned
    cache.invalidate([("b", "k")])  # a commit of v2 landed meanwhile
    cache.fill(stale, epoch_before_read)
    assert cache.get("b", "k") is None


def test_bounded_size_evicts_least_recently_used() -> None:
    cache = LatestCache(entries_max=2)
    cache.fill(version("a", "1"), cache.epoch)
    cache.fill(version("b", "1"), cache.epoch)
    assert cache.get("b", "a") is not None  # a becomes most recent
    cache.fill(version("c", "1"), cache.epoch)
    assert cache.get("b", "b") is None
    assert cache.get("b", "a") is not None
