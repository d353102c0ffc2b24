"""Bootstrap: fill an empty site with a peer's full state, then continue from its log.

1. The first ``GET snapshot`` page fixes ``snapshot_seq``: the peer's last log seq, read
   before any of its state (storage/sync/bootstrap_state.py explains why that is enough).
2. Each page (synthetic changes with their original stamps) is applied like a pulled batch:
   its missing chunks are fetched by hash first (the puller's code), then the page is applied
   whole or not at all, with LWW and dedup by ``(origin, hlc)``, together with the durable
   bootstrap record (peer, ``snapshot_seq``, position after the page, counts). The peer's
   pull cursor does not move.
3. After the last page, one transaction sets the pull cursor to ``snapshot_seq`` and clears
   the record; then :func:`~replication.puller.pull_once` catches up with every write the
   peer made (or received) during the copy.

A crash at any point loses at most the page in flight: run again, the record says where to
continue (with the same ``snapshot_seq``). The peer's positions are opaque tokens; a bucket
or key deleted on the peer meanwhile is simply not there any more when the next page is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from replication.client import PeerClient
from replication.ports import BootstrapStore
from replication.protocol import ProtocolError, SnapshotPage
from replication.puller import PullStats, fetch_then_apply, pull_once
from storage.clock import SYSTEM_CLOCK
from storage.errors import StorageError
from storage.sync.apply import ApplyResult
from storage.sync.bootstrap_state import BootstrapRecord

DEFAULT_PAGE_SIZE: Final = 500
_OBJECT_OPS: Final = frozenset({"object.put", "object.delete"})


class BootstrapRefused(StorageError):
    """This data dir cannot be bootstrapped from this peer (it holds other data)."""


@dataclass
class BootstrapProgress:
    """What a bootstrap has done so far, for the progress display and the final summary."""

    peer: str
    snapshot_seq: int = 0
    pages: int = 0  # pages applied by this run
    pages_total: int = 0  # including the runs before a resume
    objects_done: int = 0
    objects_total: int = 0
    changes: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    skew_rejected: int = 0
    resumed: bool = False
    done: bool = False
    pull: PullStats = field(default_factory=PullStats)  # chunks fetched for the pages
    catch_up: PullStats = field(default_factory=PullStats)  # the pull after the snapshot
    started: float = field(default_factory=SYSTEM_CLOCK.monotonic)  # Clock.monotonic
    bytes_start: int = 0

    @property
    def ratio(self) -> float:
        if self.objects_total <= 0:
            return 1.0 if self.done else 0.0
        return min(1.0, self.objects_done / self.objects_total)

    def add_result(self, result: ApplyResult) -> None:
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.conflicts += result.conflicts
        self.skew_rejected += result.skew_rejected


Progress = Callable[[BootstrapProgress, PeerClient], None]


async def bootstrap(
    store: BootstrapStore,
    client: PeerClient,
    peer_id: str,
    max_skew_ms: int,
    progress: Progress | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> BootstrapProgress:
    """Copy the peer's state into ``store`` (or resume doing so), then pull its log."""
    state = BootstrapProgress(
        peer=peer_id, bytes_start=client.bytes_received, started=store.time_source.monotonic()
    )
    record = await _starting_record(store, peer_id)
    if record is None:  # bootstrapped earlier (the catch-up pull may not have finished)
        state.done = True
        state.catch_up = await pull_once(store, client, peer_id, max_skew_ms)
        return state
    page: SnapshotPage | None
    if record.snapshot_seq >= 0:  # resuming (position None: only the finish was left)
        state.resumed = True
        page = (
            None
            if record.position is None
            else await _page(client, peer_id, record.position, page_size)
        )
    else:
        page = await _page(client, peer_id, None, page_size)
        assert page.snapshot_seq is not None  # checked by the client
        record = BootstrapRecord(
            peer=peer_id,
            snapshot_seq=page.snapshot_seq,
            position=None,
            objects_total=page.objects_total or 0,
            started_ms=store.time_source.wall_ms(),
        )
    state.snapshot_seq = record.snapshot_seq
    state.objects_done, state.objects_total = record.objects_done, record.objects_total
    state.pages_total = record.pages
    while page is not None:
        record = await _apply(store, client, page, record, max_skew_ms, state)
        if progress is not None:
            progress(state, client)
        page = None if page.next is None else await _page(client, peer_id, page.next, page_size)
    await store.finish_bootstrap(record)
    state.done = True
    state.catch_up = await pull_once(store, client, peer_id, max_skew_ms)
    return state


async def _starting_record(store: BootstrapStore, peer_id: str) -> BootstrapRecord | None:
    """The record to resume, a fresh one (snapshot_seq -1) for an empty store, None when a
    bootstrap from this peer already finished here; BootstrapRefused otherwise."""
    record = await store.bootstrap_record()
    if record is not None:
        if record.peer != peer_id:
            raise BootstrapRefused(
                f"a bootstrap from node {record.peer} is in progress in this data dir: "
                f"resume it with --from that node's URL"
            )
        return record
    finished = await store.finished_bootstrap()
    if finished is not None and finished.peer == peer_id:
        return None
    if not await store.is_empty():
        raise BootstrapRefused(
            "this data dir already holds data; bootstrap fills an empty site only "
            "(to catch up with a peer, use `lakenode repl pull` or start the node with --peer)"
        )
    return BootstrapRecord(peer=peer_id, snapshot_seq=-1, position=None)


async def _page(
    client: PeerClient, peer_id: str, after: str | None, page_size: int
) -> SnapshotPage:
    page = await client.snapshot(after, page_size)
    if page.node_id != peer_id:
        raise ProtocolError(f"expected a snapshot of node {peer_id}, got node {page.node_id}'s")
    return page


async def _apply(
    store: BootstrapStore,
    client: PeerClient,
    page: SnapshotPage,
    record: BootstrapRecord,
    max_skew_ms: int,
    state: BootstrapProgress,
) -> BootstrapRecord:
    objects = sum(1 for change in page.changes if change.op in _OBJECT_OPS)
    after = BootstrapRecord(
        peer=record.peer,
        snapshot_seq=record.snapshot_seq,
        position=page.next,
        pages=record.pages + 1,
        objects_done=record.objects_done + objects,
        objects_total=max(record.objects_total, record.objects_done + objects),
        started_ms=record.started_ms,
    )

    async def apply() -> ApplyResult:
        return await store.apply_snapshot_page(page.changes, after, max_skew_ms)

    result = await fetch_then_apply(store, client, record.peer, page.changes, apply, state.pull)
    state.add_result(result)
    state.pages += 1
    state.pages_total = after.pages
    state.changes += len(page.changes)
    state.objects_done, state.objects_total = after.objects_done, after.objects_total
    return after
