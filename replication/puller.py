"""Pull replication: bring this node up to date with one peer's change log.

One round (:func:`pull_once`) repeats until the peer says there is no more:

1. read the cursor ``(peer node id, 'pull')``: how far into the peer's log this node is;
2. fetch the page after it, leaving out changes that originated here (never sent home),
   except in the first full round after this node's data dir was restored from a snapshot:
   then its own changes are asked for too, so those it lost come back (storage/sync/apply.py);
3. fetch the chunks the page's manifests reference that this node lacks (a few at a time,
   each verified on arrival and stored durably before it counts);
4. ``apply_remote``: the whole page with last-writer-wins and the new cursor, in one
   transaction. A crash anywhere leaves the cursor before the page, and the page is pulled
   again; applying twice is harmless (changes are deduplicated by ``(origin, hlc)``).

Cursors are keyed by the peer's **node id**, learnt from its ``info``, not by its URL: seqs
belong to the peer's data dir, which keeps its id when the peer moves to another address,
and a different node answering at a known address must not inherit the old node's cursor.

:func:`pull_forever` runs rounds for the node's lifetime: again at once after a round that
brought changes, every ``interval_s`` when idle, with jittered exponential backoff after
failures (logged, counted in :class:`PeerState`), until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from replication.client import BootstrapRequired, PeerClient, PeerRefused, PeerUnavailable
from replication.ports import ReplicaStore
from replication.protocol import (
    MAX_CHUNK_BATCH_BYTES,
    MAX_CHUNK_BATCH_DIGESTS,
    SMALL_CHUNK_BYTES,
    ChangesPage,
    ProtocolError,
    chunk_sizes,
)
from storage.errors import StorageError
from storage.sync.apply import ApplyResult, MissingChunks
from storage.sync.feed import Change

log = logging.getLogger("lakenode.replication")

DEFAULT_BATCH_LIMIT: Final = 500
CHUNK_FETCH_CONCURRENCY: Final = 4
PULL_INTERVAL_S: Final = 0.2
BACKOFF_MAX_S: Final = 30.0


@dataclass
class PullStats:
    pages: int = 0
    changes: int = 0  # received (applied or not)
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    skew_rejected: int = 0
    chunks_fetched: int = 0
    bytes_received: int = 0
    cursor: int = 0  # position in the peer's log after the round

    def add_result(self, result: ApplyResult) -> None:
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.skew_rejected += result.skew_rejected

    def add(self, other: PullStats) -> None:
        for name in ("pages", "changes", "applied", "duplicates", "conflicts", "skew_rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.chunks_fetched += other.chunks_fetched
        self.bytes_received += other.bytes_received
        self.cursor = max(self.cursor, other.cursor)

    def summary(self) -> str:
        return (
            f"{self.applied} applied, {self.duplicates} duplicate, {self.conflicts} conflict, "
            f"{self.skew_rejected} skew-rejected of {self.changes} change(s) in {self.pages} "
            f"page(s); {self.chunks_fetched} chunk(s), {self.bytes_received} bytes received; "
            f"cursor {self.cursor}"
        )


@dataclass
class PeerState:
    """What this node knows about one peer, in memory (for status and metrics later)."""

    url: str
    node_id: str | None = None  # learnt from the peer's info; None until then
    clock_offset_ms: int | None = None  # peer wall clock minus ours, estimated
    peer_last_seq: int | None = None
    cursor: int | None = None
    last_success_ms: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    totals: PullStats = field(default_factory=PullStats)
    link_up: bool | None = None  # did the last attempt reach the peer? None before the first
    errors: dict[str, int] = field(default_factory=dict)  # failed rounds by error_reason()

    @property
    def name(self) -> str:
        return self.node_id or self.url

    def observe_clock(self, peer_now_ms: int, sent_ms: int, received_ms: int) -> None:
        """Offset estimate: the peer read its clock about halfway through the round trip."""
        self.clock_offset_ms = peer_now_ms - (sent_ms + received_ms) // 2

    def succeeded(self, stats: PullStats, now_ms: int) -> None:
        self.totals.add(stats)
        self.cursor = stats.cursor
        self.last_success_ms = now_ms
        self.last_error = None
        self.consecutive_failures = 0
        self.link_up = True

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.consecutive_failures += 1
        self.link_up = not isinstance(error, PeerUnavailable)
        reason = error_reason(error)
        self.errors[reason] = self.errors.get(reason, 0) + 1


def error_reason(error: BaseException) -> str:
    """A short, bounded label for a failed round (the ``reason`` of apply-error metrics)."""
    if isinstance(error, PeerUnavailable):
        return "unavailable"
    if isinstance(error, BootstrapRequired):
        return "bootstrap_required"
    if isinstance(error, PeerRefused):
        return "refused"
    if isinstance(error, ProtocolError):
        return "protocol"
    if isinstance(error, MissingChunks):
        return "missing_chunks"
    if isinstance(error, StorageError):
        return "storage"
    return "internal"


async def pull_once(
    store: ReplicaStore,
    client: PeerClient,
    peer_name: str,
    max_skew_ms: int,
    batch_limit: int = DEFAULT_BATCH_LIMIT,
    state: PeerState | None = None,
) -> PullStats:
    """Pull pages from the peer until it has no more; what was done, for logs and stats."""
    stats = PullStats()
    bytes_before = client.bytes_received
    # After a restore, one full round also asks for our own changes (storage/sync/apply.py).
    own_too = store.repulls_own_changes(peer_name)
    exclude = None if own_too else store.node_id
    while True:
        cursor = await store.get_cursor(peer_name, "pull")
        sent_ms = store.time_source.wall_ms()
        page = await client.changes(cursor, batch_limit, exclude_origin=exclude)
        if state is not None:
            state.observe_clock(page.now_ms, sent_ms, store.time_source.wall_ms())
            state.peer_last_seq = page.last_seq
            state.link_up = True  # a first round after an outage can last long: say so now
        check_page(page, peer_name, cursor)
        stats.pages += 1
        stats.changes += len(page.changes)
        if page.changes or page.last_seq > cursor:
            await apply_page(store, client, peer_name, page, max_skew_ms, stats)
        stats.cursor = page.last_seq
        if not page.more:
            break
    if own_too:
        await store.own_changes_repulled(peer_name)
    stats.bytes_received = client.bytes_received - bytes_before
    return stats


def check_page(page: ChangesPage, peer_name: str, cursor: int) -> None:
    """Refuse a page that is not the continuation of the peer's log after ``cursor``."""
    if page.node_id != peer_name:
        raise ProtocolError(f"expected the log of node {peer_name}, got node {page.node_id}'s")
    if page.last_seq < cursor:
        raise ProtocolError(
            f"node {peer_name}'s log ends at seq {page.last_seq}, before this node's cursor "
            f"{cursor}: was its data dir replaced or restored from a backup?"
        )
    if page.changes and page.changes[0].seq <= cursor:
        raise ProtocolError(f"page starts at seq {page.changes[0].seq}, asked after {cursor}")
    if page.more and page.last_seq == cursor:
        raise ProtocolError("page makes no progress but says there is more")


async def apply_page(
    store: ReplicaStore,
    client: PeerClient,
    peer_name: str,
    page: ChangesPage,
    max_skew_ms: int,
    stats: PullStats,
) -> None:
    """Fetch the page's missing chunks, then apply it and move the cursor, atomically."""

    async def apply() -> ApplyResult:
        return await store.apply_remote(peer_name, page.changes, page.last_seq, max_skew_ms)

    result = await fetch_then_apply(store, client, peer_name, page.changes, apply, stats)
    stats.add_result(result)
    _log_rejected(peer_name, result.rejected)


async def fetch_then_apply(
    store: ReplicaStore,
    client: PeerClient,
    peer_name: str,
    changes: list[Change],
    apply: Callable[[], Awaitable[ApplyResult]],
    stats: PullStats,
) -> ApplyResult:
    """Fetch the chunks ``changes`` reference that this node lacks, then ``apply()`` them
    (pulled pages and bootstrap snapshot pages alike)."""
    await fetch_missing(store, client, chunk_sizes(changes), stats)
    try:
        return await apply()
    except MissingChunks as exc:
        # Only if a chunk went missing between our check and the apply; one more try.
        log.warning("applying %s's page: %s; fetching them again", peer_name, exc)
        await fetch_missing(store, client, dict.fromkeys(exc.digests, LARGE), stats)
        return await apply()


LARGE: Final = SMALL_CHUNK_BYTES + 1  # size assumed for a chunk of unknown length


async def fetch_missing(
    store: ReplicaStore, client: PeerClient, sizes: Mapping[bytes, int], stats: PullStats
) -> None:
    """Fetch and store the chunks this node lacks, CHUNK_FETCH_CONCURRENCY requests at a time.

    Small chunks travel in batches (one request for many), large ones alone. A worker holds
    at most one batch (MAX_CHUNK_BATCH_BYTES) or one chunk in memory, so memory stays
    bounded whatever the page.
    """
    if not sizes:
        return
    missing = await store.missing_chunks(sizes)
    pending = iter(_fetch_plan(missing, sizes))

    async def worker() -> None:
        for batch in pending:  # shared: each batch goes to exactly one worker
            await _fetch_batch(store, client, batch, stats)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(CHUNK_FETCH_CONCURRENCY, len(missing))):
                group.create_task(worker())
    except ExceptionGroup as failures:
        # Callers classify one error (unavailable vs protocol); the others are attached.
        raise failures.exceptions[0] from failures


def _fetch_plan(missing: set[bytes], sizes: Mapping[bytes, int]) -> list[list[bytes]]:
    """Batches of small chunks up to the batch size, and each large chunk alone."""
    plan: list[list[bytes]] = []
    batch: list[bytes] = []
    batch_bytes = 0
    for digest in sorted(missing):
        size = sizes.get(digest, LARGE)
        if size > SMALL_CHUNK_BYTES:
            plan.append([digest])
            continue
        if batch and (
            batch_bytes + size > MAX_CHUNK_BATCH_BYTES or len(batch) >= MAX_CHUNK_BATCH_DIGESTS
        ):
            plan.append(batch)
            batch, batch_bytes = [], 0
        batch.append(digest)
        batch_bytes += size
    if batch:
        plan.append(batch)
    return plan


async def _fetch_batch(
    store: ReplicaStore, client: PeerClient, batch: list[bytes], stats: PullStats
) -> None:
    found: dict[bytes, bytes] = {}
    if len(batch) > 1:
        try:
            found = await client.chunk_batch(batch)
        except PeerRefused as exc:
            if exc.status not in (404, 405):
                raise
            # A peer without batch support: every chunk alone, as before.
    for digest in batch:
        data = found.pop(digest, None)
        if data is None:
            data = await client.chunk(digest)  # left out of the batch, or fetched alone
        await store.receive_chunk(data)  # indexed by the batch's own commit
        stats.chunks_fetched += 1


def _log_rejected(peer_name: str, rejected: list[Change]) -> None:
    for change in rejected[:10]:
        log.warning(
            "rejected change from %s: %s %s/%s hlc %d origin %s (clock skew)",
            peer_name,
            change.op,
            change.bucket,
            change.key or "",
            change.hlc,
            change.origin,
        )
    if len(rejected) > 10:
        log.warning("... and %d more rejected changes from %s", len(rejected) - 10, peer_name)


# ---- running for the node's lifetime -----------------------------------------------------------


async def identify_peer(store: ReplicaStore, client: PeerClient, state: PeerState) -> str:
    """Learn the peer's node id (the cursor key) from its info; refuse to pull from ourself."""
    sent_ms = store.time_source.wall_ms()
    info = await client.info()
    state.observe_clock(info.now_ms, sent_ms, store.time_source.wall_ms())
    if info.node_id == store.node_id:
        raise ProtocolError(f"peer {client.base_url} is this node ({store.node_id}) itself")
    if state.node_id != info.node_id:
        log.info("peer %s is node %s (log at seq %d)", client.base_url, info.node_id, info.last_seq)
    state.node_id = info.node_id
    state.peer_last_seq = info.last_seq
    return info.node_id


async def pull_forever(
    store: ReplicaStore,
    client: PeerClient,
    state: PeerState,
    max_skew_ms: int,
    *,
    interval_s: float = PULL_INTERVAL_S,
    backoff_max_s: float = BACKOFF_MAX_S,
    batch_limit: int = DEFAULT_BATCH_LIMIT,
) -> None:
    """Pull from one peer until cancelled; failures are logged, counted and backed off."""
    while True:
        try:
            peer_name = state.node_id or await identify_peer(store, client, state)
            stats = await pull_once(store, client, peer_name, max_skew_ms, batch_limit, state)
        except PeerUnavailable as exc:
            state.failed(exc)
            log.warning("peer %s unavailable: %s", state.name, exc)
            delay = backoff_delay(state.consecutive_failures, interval_s, backoff_max_s)
        except Exception as exc:
            # A protocol error, a refused request or a local failure: stop this round, say so
            # loudly, and re-identify the peer before trying again (it may have been replaced).
            # A traceback only for what is not a peer's answer (a bug or a local failure).
            state.failed(exc)
            trace = None if isinstance(exc, ProtocolError) else exc
            log.error("pulling from %s failed: %s", state.name, exc, exc_info=trace)
            state.node_id = None
            delay = backoff_delay(state.consecutive_failures, interval_s, backoff_max_s)
        else:
            state.succeeded(stats, store.time_source.wall_ms())
            if stats.changes:
                log.info("pulled from %s: %s", peer_name, stats.summary())
            delay = 0.0 if stats.changes else interval_s
        await asyncio.sleep(delay)


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    """Exponential in consecutive failures, capped, with jitter so peers do not synchronise."""
    ceiling = min(max_s, base_s * 2 ** min(failures, 30))
    return random.uniform(ceiling / 2, ceiling)
