"""Parsed bucket documents (CORS rules, lifecycle rules) cached per bucket for a second.

Requests that consult a bucket document on every call (CORS headers for any request with
``Origin``, ``x-amz-expiration`` on HEAD/GET) pay a dict lookup instead of a catalog read and
a parse. This node's own Put/Delete calls, in any of its workers, invalidate at once
(``Store.bucket_epoch``); a change made elsewhere (replication) shows up within
:data:`CACHE_TTL_S`.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from storage.errors import NoSuchConfiguration
from storage.store import Store

log = logging.getLogger("lakenode.api")

T = TypeVar("T")
CACHE_TTL_S = 1.0
CACHE_BUCKETS_MAX = 10_000


class DocumentCache(Generic[T]):
    """One document's parsed value per bucket; ``absent`` without one, or when the stored one
    no longer parses (``invalid`` errors: written by a peer running other rules) it must not
    break every request, so it is logged and ignored."""

    def __init__(
        self,
        store: Store,
        name: str,
        parse: Callable[[str], T],
        absent: T,
        invalid: tuple[type[Exception], ...],
    ) -> None:
        self._store = store
        self._name = name
        self._parse = parse
        self._absent = absent
        self._invalid = invalid
        self._entries: dict[str, tuple[float, int, T]] = {}  # (read at, bucket epoch, value)

    def invalidate(self, bucket: str) -> None:
        self._entries.pop(bucket, None)

    async def get(self, bucket: str) -> T:
        """The bucket's parsed document; NoSuchBucket is raised through."""
        epoch = self._store.bucket_epoch  # moves when any worker changes a bucket
        cached = self._entries.get(bucket)
        if cached is not None and cached[1] == epoch and time.monotonic() - cached[0] < CACHE_TTL_S:
            return cached[2]
        try:
            value = self._parse(await self._store.get_bucket_document(bucket, self._name))
        except NoSuchConfiguration:
            value = self._absent
        except self._invalid:
            log.warning(
                "bucket %s: stored %s configuration is invalid; ignored", bucket, self._name
            )
            value = self._absent
        if len(self._entries) >= CACHE_BUCKETS_MAX:
            self._entries.clear()  # only existing buckets get here; a crude bound is enough
        self._entries[bucket] = (time.monotonic(), epoch, value)
        return value


class PerStore(Generic[T]):
    """One :class:`DocumentCache` per open store, made by ``factory`` on first use."""

    def __init__(self, factory: Callable[[Store], DocumentCache[T]]) -> None:
        self._factory = factory
        self._caches: weakref.WeakKeyDictionary[Store, DocumentCache[T]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, store: Store) -> DocumentCache[T]:
        cache = self._caches.get(store)
        if cache is None:
            cache = self._caches[store] = self._factory(store)
        return cache
