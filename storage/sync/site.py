"""SyncSite: the replication-facing side of one node's Store (what replication/ports.py names).

Built from an open :class:`~storage.store.Store` (``await SyncSite.open(store)``, one per
store), it serves the change feed and chunks by hash (storage/sync/feed.py), applies a peer's
changes (storage/sync/apply.py) and snapshot pages (storage/sync/bootstrap_state.py), answers
digests (storage/digest.py), runs tombstone GC (storage/sync/tombstone_gc.py) and keeps the
replication facts status and metrics report (storage/sync/peer_stats.py). It reads through the
store's reader connection and writes through its group committer, like the store itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import blake3

from storage import catalog, digest
from storage.manifest import ChunkRef, Manifest
from storage.segments import RecordKind
from storage.store import Store
from storage.sync import apply, bootstrap_state, feed, peer_stats, retention, tombstone_gc
from storage.sync.apply import ApplyResult
from storage.sync.feed import Change


class SyncSite:
    """What replication needs of one open store (satisfies replication.ports.BootstrapStore)."""

    def __init__(
        self, store: Store, repull_own: bool = False, repulled: set[str] | None = None
    ) -> None:
        self.store = store
        self.node_id = store.node_id
        self.clock = store.clock
        self.time_source = store.time_source  # the wall and monotonic clock; ``clock`` is the HLC
        # Chunks appended by receive_chunk, indexed by the next apply_remote; each holds an
        # in-flight floor (storage/inflight.py) until then.
        self._received: dict[bytes, ChunkRef] = {}
        self._received_tokens: dict[bytes, int] = {}
        # After a restore: pull our own changes back from each peer once (storage/sync/apply.py).
        self._repull_own = repull_own
        self._repulled_from: set[str] = set(repulled or ())

    @classmethod
    async def open(cls, store: Store) -> SyncSite:
        """The store's replication side, with what is left of a restore's re-pull."""
        repull_own, repulled = await store.query(apply.repull_state)
        return cls(store, repull_own, repulled)

    # ---- the feed, chunks by hash, remote apply (storage/sync/feed.py, apply.py) --------------

    async def changes_after(
        self, after_seq: int, limit: int, exclude_origin: str | None
    ) -> list[Change]:
        return await self.store.query(feed.changes_after, after_seq, limit, exclude_origin)

    async def last_seq(self) -> int:
        return await self.store.query(feed.last_seq)

    async def read_chunk_by_hash(self, digest: bytes) -> bytes | None:
        """The verified bytes of a chunk this node holds, or None."""
        location = await self.store.query(catalog.chunk_location, digest)
        if location is None:
            return None
        return await self.store.read_chunk(location)

    async def missing_chunks(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = [d for d in dict.fromkeys(digests) if d not in self._received]
        return await self.store.query(feed.missing_chunks, wanted)

    async def receive_chunk(self, data: bytes) -> None:
        """Append a chunk received for the next batch, without a commit of its own.

        The next apply_remote indexes it in its transaction, whose commit fsyncs the segment
        first: one commit per batch instead of one per chunk (a 10,000-change backlog of small
        objects is mostly chunk commits otherwise). A crash before that apply leaves the bytes
        as orphans; the chunk is fetched again.
        """
        digest = blake3.blake3(data).digest()
        token = self.store.inflight.enter(self.store.active_segment_id)
        try:
            record = await asyncio.to_thread(
                self.store.append_record, RecordKind.CHUNK, data, digest
            )
        except BaseException:
            self.store.inflight.leave(token)
            raise
        self._received[digest] = ChunkRef(record.segment_id, record.offset, record.length, digest)
        replaced = self._received_tokens.pop(digest, None)
        self._received_tokens[digest] = token
        if replaced is not None:
            self.store.inflight.leave(replaced)

    def _indexed(self, received: tuple[ChunkRef, ...]) -> None:
        """These received chunks are committed (indexed): forget them, drop their floors."""
        for chunk in received:
            self._received.pop(chunk.blake3, None)
            token = self._received_tokens.pop(chunk.blake3, None)
            if token is not None:
                self.store.inflight.leave(token)

    async def store_chunk(self, data: bytes) -> None:
        """Append a received chunk and index it; durable when this returns."""
        digest = blake3.blake3(data).digest()
        token = self.store.inflight.enter(self.store.active_segment_id)
        try:
            record = await asyncio.to_thread(
                self.store.append_record, RecordKind.CHUNK, data, digest
            )
            chunk = ChunkRef(record.segment_id, record.offset, record.length, digest)
            await self.store.commit(apply.IndexChunks((chunk,)))
        finally:
            self.store.inflight.leave(token)

    async def apply_remote(
        self, peer: str, changes: list[Change], cursor: int, max_skew_ms: int
    ) -> ApplyResult:
        """Apply a peer's batch (LWW, all or nothing) and move its pull cursor."""
        for bucket in feed.carries_tags(changes):
            self.store.mark_tagged(bucket)
        received = tuple(self._received.values())
        result = await self.store.commit(
            peer_stats.CountedApply(
                apply.ApplyRemote(peer, tuple(changes), cursor, max_skew_ms, self.clock, received)
            )
        )
        self._indexed(received)
        return result

    async def purge_tombstones(self, limits: tombstone_gc.PurgeLimits) -> tombstone_gc.PurgeReport:
        """Tombstone GC (storage/sync/tombstone_gc.py) in bounded transactions until done."""
        total = tombstone_gc.PurgeReport()
        while True:
            step = await self.store.commit(tombstone_gc.PurgeBatch(limits))
            self.store.invalidate_latest(step.keys)
            total.add(step)
            if step.purged == 0:
                return total

    async def record_configured_peers(self, urls: tuple[str, ...]) -> None:
        await self.store.commit(retention.RecordConfiguredPeers(urls))

    async def log_pruned_through(self) -> int:
        return await self.store.query(tombstone_gc.log_pruned_through)

    async def digest_node(self, prefix: str) -> bytes:
        return await self.store.query(digest.node, prefix)

    async def digest_children(self, prefix: str) -> dict[str, bytes]:
        return await self.store.query(digest.children, prefix)

    async def key_facts(self, bucket: str, key: str) -> digest.KeyFacts:
        return await self.store.query(digest.key_facts, bucket, key)

    async def facts_page(self, after: tuple[str, str] | None, keys: int) -> list[digest.KeyFacts]:
        return await self.store.query(digest.facts_page, after, keys)

    async def purge_cutoff(self) -> int:
        return await self.store.query(digest.purge_cutoff)

    async def digest_leaves(self, prefix: str) -> list[digest.Leaf]:
        return await self.store.query(digest.leaves, prefix)

    async def replication_status(self, manifest: Manifest, peers: list[str | None]) -> str | None:
        """S3's x-amz-replication-status: REPLICA for a version written elsewhere; for ours,
        COMPLETED once every configured peer acknowledged it, else PENDING; None without
        peers. A peer not yet identified has acknowledged nothing."""
        if manifest.origin != self.node_id:
            return "REPLICA"
        if not peers:
            return None
        if any(peer is None for peer in peers):
            return "PENDING"
        known = [peer for peer in peers if peer is not None]
        return await self.store.query(feed.replication_state, manifest.origin, manifest.hlc, known)

    async def get_cursor(self, peer: str, direction: str) -> int:
        return await self.store.query(feed.get_cursor, peer, direction)

    def repulls_own_changes(self, peer: str) -> bool:
        """True until a pull round from ``peer`` has brought back this node's own changes
        after a restore (they are otherwise never sent to their origin)."""
        return self._repull_own and peer not in self._repulled_from

    async def own_changes_repulled(self, peer: str) -> None:
        if self.repulls_own_changes(peer):
            await self.store.commit(apply.OwnChangesRepulled(peer))
            self._repulled_from.add(peer)

    # ---- snapshots and bootstrap (storage/sync/bootstrap_state.py) -------------------------------

    async def snapshot_page(
        self, after: bootstrap_state.Position | None, limit: int
    ) -> tuple[list[Change], bootstrap_state.Position | None]:
        """This site's state after ``after`` as synthetic changes; where to continue."""
        return await self.store.query(bootstrap_state.snapshot_page, after, limit)

    async def count_versions(self) -> int:
        return await self.store.query(bootstrap_state.count_versions)

    async def is_empty(self) -> bool:
        return await self.store.query(bootstrap_state.is_empty)

    async def bootstrap_record(self) -> bootstrap_state.BootstrapRecord | None:
        """The bootstrap in progress in this data dir, if any."""
        return await self.store.query(bootstrap_state.read_bootstrap)

    async def finished_bootstrap(self) -> bootstrap_state.BootstrapRecord | None:
        return await self.store.query(bootstrap_state.read_finished_bootstrap)

    async def apply_snapshot_page(
        self,
        changes: list[Change],
        record: bootstrap_state.BootstrapRecord,
        max_skew_ms: int,
    ) -> ApplyResult:
        """Apply a snapshot page (LWW, all or nothing) and record the bootstrap's progress."""
        for bucket in feed.carries_tags(changes):
            self.store.mark_tagged(bucket)
        received = tuple(self._received.values())  # see receive_chunk
        result = await self.store.commit(
            bootstrap_state.ApplySnapshotPage(
                tuple(changes), record, max_skew_ms, self.clock, received
            )
        )
        self._indexed(received)
        return result

    async def finish_bootstrap(self, record: bootstrap_state.BootstrapRecord) -> None:
        """Set the peer's pull cursor to the snapshot's seq and clear the bootstrap record."""
        await self.store.commit(bootstrap_state.FinishBootstrap(record, self.clock))

    async def set_cursor(self, peer: str, direction: str, seq: int) -> None:
        await self.store.commit(feed.SetCursor(peer, direction, seq, self.clock))

    # ---- replication status and metrics (storage/sync/peer_stats.py) -----------------------------

    async def repl_backlog(self, after_seq: int, exclude_origin: str | None) -> peer_stats.Backlog:
        """Changes of this node's log after ``after_seq`` (not from ``exclude_origin``)."""
        return await self.store.query(peer_stats.backlog, after_seq, exclude_origin)

    async def peer_cursors(self) -> list[peer_stats.CursorRow]:
        return await self.store.query(peer_stats.cursor_rows)

    async def repl_counters(self) -> dict[str, peer_stats.PeerCounters]:
        return await self.store.query(peer_stats.read_counters)

    async def add_repl_counters(self, peer: str, delta: peer_stats.PeerCounters) -> None:
        if not delta.is_zero():
            await self.store.commit(peer_stats.AddCounters(peer, delta))

    async def validate_records(self) -> dict[str, peer_stats.ValidateRecord]:
        return await self.store.query(peer_stats.read_validates)

    async def bootstrap_progress(self) -> dict[str, float]:
        return await self.store.query(peer_stats.read_bootstrap_progress)

    async def peer_urls(self) -> dict[str, str]:
        """URL -> the node id last seen answering there."""
        return await self.store.query(peer_stats.read_peer_urls)

    async def remember_peer_url(self, url: str, node_id: str) -> None:
        await self.store.commit(peer_stats.RememberPeerUrl(url, node_id))
