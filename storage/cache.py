"""A bounded cache of the latest version of recently read keys.

Small GETs and HEADs are dominated by the metadata lookup's thread hop, so the latest
manifest of a key is kept in memory after a read. Correctness rests on two rules:

* every commit invalidates the keys it touched (a bucket-level mutation clears everything)
  before any writer is acknowledged, so a read that starts after an acknowledged write
  never sees the old version;
* a commit may then fill in the versions it made latest: it knows them exactly;
* every invalidation bumps ``epoch``; a reader remembers the epoch from before its database
  read and fills the cache only if no commit happened meanwhile, so a slow reader cannot
  put back a version that a concurrent commit has just replaced.

With several worker processes, commits of the other workers arrive as key digests
(storage/workers.py): the cache then also indexes its entries by digest, and
:meth:`forget_digests` counts as a commit (it bumps ``epoch``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from storage.manifest import Manifest
from storage.workers import key_digest

ENTRIES_MAX = 20_000
# Manifests of large objects are big and their GETs are long anyway: not worth caching.
CHUNKS_MAX = 4


class LatestCache:
    def __init__(self, entries_max: int = ENTRIES_MAX, by_digest: bool = False) -> None:
        self._entries: OrderedDict[tuple[str, str], Manifest] = OrderedDict()
        self._entries_max = entries_max
        self.epoch = 0
        # Only with several workers: digest -> (bucket, key) of every entry.
        self._by_digest: dict[bytes, tuple[str, str]] | None = {} if by_digest else None

    def get(self, bucket: str, key: str) -> Manifest | None:
        manifest = self._entries.get((bucket, key))
        if manifest is not None:
            self._entries.move_to_end((bucket, key))
        return manifest

    def fill(self, manifest: Manifest, epoch_before_read: int) -> None:
        if epoch_before_read != self.epoch or len(manifest.chunks) > CHUNKS_MAX:
            return
        name = (manifest.bucket, manifest.key)
        self._entries[name] = manifest
        if self._by_digest is not None:
            self._by_digest[key_digest(*name)] = name
        if len(self._entries) > self._entries_max:
            evicted, _manifest = self._entries.popitem(last=False)
            if self._by_digest is not None:
                self._by_digest.pop(key_digest(*evicted), None)

    def fill_committed(self, versions: list[Manifest]) -> None:
        """Remember versions a commit just made latest (called right after invalidate)."""
        for manifest in versions:
            self.fill(manifest, self.epoch)

    def invalidate(self, touched: Iterable[tuple[str, str | None]]) -> None:
        """Forget the given (bucket, key) pairs; a None key forgets everything."""
        self.epoch += 1
        for bucket, key in touched:
            if key is None:
                self._clear_entries()
                return
            if self._entries.pop((bucket, key), None) is not None and self._by_digest is not None:
                self._by_digest.pop(key_digest(bucket, key), None)

    def forget_digests(self, digests: Iterable[bytes]) -> None:
        """Forget the entries of keys another worker committed (by digest)."""
        self.epoch += 1
        if self._by_digest is None:
            return
        for digest in digests:
            name = self._by_digest.pop(digest, None)
            if name is not None:
                self._entries.pop(name, None)

    def clear(self) -> None:
        self.epoch += 1
        self._clear_entries()

    def _clear_entries(self) -> None:
        self._entries.clear()
        if self._by_digest is not None:
            self._by_digest.clear()
