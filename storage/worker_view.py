"""One worker's view of what the other workers of its node committed: keeps its caches honest.

A Store has a :class:`WorkerView` always; with one worker (no shared state) it only counts
bucket-wide changes. With several (storage/workers.py) :meth:`WorkerView.catch_up` is called
before any cache is trusted: it reads the shared ring (a few memory loads when nothing
happened) and forgets what the other workers touched, so that a read that starts after an
acknowledged write on any worker sees it:

* keys: the latest-version cache (storage/cache.py) drops them by digest;
* bucket-wide changes (documents, versioning, create, delete): ``bucket_epoch`` moves, which
  every bucket-level cache compares against (api/access.py, api/document_cache.py,
  storage/object_locks.py), and the latest-version cache is cleared;
* a bucket's first tags: until the tagged-bucket set has been read again, every bucket may
  have tags (:meth:`Store.may_have_tags <storage.store.Store.may_have_tags>` says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from storage.cache import LatestCache
from storage.workers import SharedState, Touched

log = logging.getLogger("lakenode.store")


class WorkerView:
    def __init__(
        self,
        latest: LatestCache,
        shared: SharedState | None,
        reload_tagged: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self.shared = shared
        self._latest = latest
        self._reload_tagged = reload_tagged
        self.bucket_epoch = 0  # moves on every bucket-wide change, local or not
        self.tagged: set[str] = set()  # buckets that hold (or held) tags: only ever grown
        self._tags_unknown = 0  # TAGGED news not yet followed by a reload
        self._reloading: asyncio.Task[None] | None = None

    def catch_up(self) -> None:
        """Forget what other workers committed since the last call (no-op with one worker)."""
        if self.shared is None:
            return
        touched = self.shared.poll()
        if touched is not None:
            self.forget(touched)

    def committed_here(self, touched: list[tuple[str, str | None]]) -> None:
        """This worker's own commit touched these (after the latest cache was told)."""
        if any(key is None for _bucket, key in touched):
            self.bucket_epoch += 1

    def forget(self, touched: Touched) -> None:
        """Apply what other workers committed."""
        if touched.everything or touched.buckets:
            self._latest.clear()
            self.bucket_epoch += 1
        else:
            self._latest.forget_digests(touched.keys)
        if touched.everything or touched.tagged:
            self._tags_unknown += 1
            self._reload_tags_soon()

    def may_have_tags(self, bucket: str) -> bool:
        self.catch_up()
        return self._tags_unknown > 0 or bucket in self.tagged

    def _reload_tags_soon(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._reload_tags())

    async def _reload_tags(self) -> None:
        while self._tags_unknown:
            news = self._tags_unknown
            try:
                self.tagged.update(await self._reload_tagged())
            except Exception:
                log.exception("reading the tagged buckets failed; tags are looked up everywhere")
                return
            # News that arrived during the read may name a commit the read missed: go again.
            if self._tags_unknown == news:
                self._tags_unknown = 0
