"""Push replication: send this node's change log to one peer until it holds all of it.

The mirror image of pull. Our position in our own log for a peer is the cursor
``(peer node id, 'push')``; the peer keeps the same position as its ``(our id, 'pull')``
cursor, since a pushed page and a pulled page of our log are the same thing. A round
(:func:`push_once`) repeats until the page after the cursor is empty:

1. read the page of our log after the cursor, leaving out changes that originated at the
   peer (never sent home; ``last_seq`` still passes over them);
2. ``POST push?after=<cursor>``. The peer answers

   * 200 with its counts and its cursor: the page is applied (or it held it already);
     our push cursor moves to that position, never before the peer applied the page;
   * 409 ``MissingChunks`` with the digests it lacks: upload them (``PUT chunks/``), resend;
   * 409 ``CursorMismatch`` with the cursor it holds: it is behind our push cursor (its data
     dir was restored, or it was pushed to from another data dir of ours): restart from its
     cursor. Our stored cursor only moves forward, so a later round meets the same 409 once
     and restarts again; nothing is skipped.

A peer that already pulled part of our log answers a page it holds with its (greater)
cursor, so the push jumps ahead instead of sending it again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from replication.client import PeerClient, PushRejected
from replication.ports import ReplicaStore
from replication.protocol import MAX_INT, ProtocolError
from replication.routes import read_page

log = logging.getLogger("lakenode.replication.push")

DEFAULT_BATCH_LIMIT: Final = 500
CHUNK_UPLOAD_CONCURRENCY: Final = 4
# 409s in a row without the peer applying anything: past this the peer is not converging
# (it keeps losing the chunks, or keeps moving its cursor) and the push stops with an error.
MAX_REJECTIONS_IN_A_ROW: Final = 8


class PushFailed(Exception):
    """The push cannot go on (a chunk the peer asks for is gone here, no progress...)."""


@dataclass
class PushStats:
    pages: int = 0  # pages the peer accepted
    changes: int = 0  # changes sent in them
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    skew_rejected: int = 0
    chunks_sent: int = 0
    bytes_sent: int = 0  # request bodies: pages and chunks, resends included
    restarts: int = 0  # CursorMismatch answers followed
    cursor: int = 0  # position in our log the peer holds, after the round

    def summary(self) -> str:
        return (
            f"{self.changes} change(s) sent in {self.pages} page(s): {self.applied} applied, "
            f"{self.duplicates} duplicate, {self.conflicts} conflict, {self.skew_rejected} "
            f"skew-rejected; {self.chunks_sent} chunk(s), {self.bytes_sent} bytes sent; "
            f"{self.restarts} restart(s); cursor {self.cursor}"
        )


async def push_once(
    store: ReplicaStore,
    client: PeerClient,
    peer_node_id: str,
    batch_limit: int = DEFAULT_BATCH_LIMIT,
) -> PushStats:
    """Push pages to the peer until it holds our whole log (excluding its own changes)."""
    if peer_node_id == store.node_id:
        raise ProtocolError(f"peer {client.base_url} is this node ({store.node_id}) itself")
    stats = PushStats()
    sent_before = client.bytes_sent
    cursor = await store.get_cursor(peer_node_id, "push")
    rejections = 0
    try:
        while True:
            page = await read_page(store, cursor, batch_limit, peer_node_id)
            if not page.changes and page.last_seq <= cursor:
                break  # caught up: nothing after the cursor
            try:
                answer = await client.push(page, after=cursor)
            except PushRejected as rejected:
                rejections += 1
                if rejections > MAX_REJECTIONS_IN_A_ROW:
                    raise PushFailed(
                        f"{client.base_url} refused {rejections} pushes in a row: {rejected}"
                    ) from rejected
                if rejected.code == "MissingChunks":
                    await upload_chunks(store, client, rejected.missing, stats)
                elif rejected.code == "CursorMismatch":
                    cursor = await _peer_cursor(store, rejected)
                    stats.restarts += 1
                    log.info("%s holds our log up to %d: pushing from there", peer_node_id, cursor)
                else:
                    raise
                continue
            rejections = 0
            held = answer.get("cursor", page.last_seq)
            if held > await store.last_seq():
                raise ProtocolError(
                    f"{client.base_url} says it holds our log up to {held}, beyond its end"
                )
            stats.pages += 1
            stats.changes += len(page.changes)
            stats.applied += answer.get("applied", 0)
            stats.duplicates += answer.get("duplicates", 0)
            stats.conflicts += answer.get("conflicts", 0)
            stats.skew_rejected += answer.get("skew_rejected", 0)
            cursor = max(page.last_seq, held)
            await store.set_cursor(peer_node_id, "push", cursor)
    finally:
        stats.bytes_sent = client.bytes_sent - sent_before
    stats.cursor = cursor
    return stats


async def _peer_cursor(store: ReplicaStore, rejected: PushRejected) -> int:
    """The position a CursorMismatch answer names, checked against our log."""
    value = rejected.body.get("cursor")
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise ProtocolError(f"CursorMismatch without a valid cursor: {value!r:.40}")
    if value > await store.last_seq():
        raise ProtocolError(
            f"the peer holds our log up to {value}, beyond its end: "
            "was this data dir replaced or restored from a backup?"
        )
    return value


async def upload_chunks(
    store: ReplicaStore, client: PeerClient, digests: set[bytes], stats: PushStats
) -> None:
    """Send the chunks the peer lacks, CHUNK_UPLOAD_CONCURRENCY at a time (one in memory each)."""
    pending = iter(sorted(digests))

    async def worker() -> None:
        for digest in pending:  # shared: each digest goes to exactly one worker
            data = await store.read_chunk_by_hash(digest)
            if data is None:
                raise PushFailed(f"the peer asks for chunk {digest.hex()}, which is not here")
            await client.put_chunk(digest, data)
            stats.chunks_sent += 1

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(CHUNK_UPLOAD_CONCURRENCY, len(digests))):
                group.create_task(worker())
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from failures
