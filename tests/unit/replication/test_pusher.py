"""push_once against an in-memory store and a fake peer that answers like POST push.

The fake peer keeps one cursor into our log (its ``(us, 'pull')`` position), holds a set of
chunks, and answers 409 CursorMismatch / MissingChunks exactly as replication/routes.py does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from replication.client import PeerUnavailable, PushRejected
from replication.protocol import ChangesPage
from replication.pusher import MAX_REJECTIONS_IN_A_ROW, PushFailed, push_once
from storage.clock import ManualClock
from storage.sync.feed import Change

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@dataclass
class FakeStore:
    node_id: str = "us"
    time_source: ManualClock = field(default_factory=ManualClock)
    log: list[Change] = field(default_factory=list)
    cursors: dict[tuple[str, str], int] = field(default_factory=dict)
    chunks: dict[bytes, bytes] = field(default_factory=dict)

    def write(self, origin: str = "us", n: int = 1) -> None:
        for _ in range(n):
            seq = len(self.log) + 1
            self.log.append(Change(seq, seq << 16, origin, "bucket.create", f"b{seq}"))

    async def last_seq(self) -> int:
        return len(self.log)

    async def changes_after(
        self, after_seq: int, limit: int, exclude_origin: str | None
    ) -> list[Change]:
        found = [c for c in self.log if c.seq > after_seq and c.origin != exclude_origin]
        return found[:limit]

    async def get_cursor(self, peer: str, direction: str) -> int:
        return self.cursors.get((peer, direction), 0)

    async def set_cursor(self, peer: str, direction: str, seq: int) -> None:
        key = (peer, direction)
        self.cursors[key] = max(self.cursors.get(key, 0), seq)

    async def read_chunk_by_hash(self, digest: bytes) -> bytes | None:
        return self.chunks.get(digest)


@dataclass
class FakePeer:
    """The receiving side of POST push (same decisions as routes.handle_push)."""

    cursor: int = 0
    needs: dict[int, bytes] = field(default_factory=dict)  # change seq -> chunk digest
    held: dict[bytes, bytes] = field(default_factory=dict)
    pages: list[ChangesPage] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)
    fail_after_pages: int | None = None
    base_url: str = "http://peer"
    bytes_sent: int = 0

    async def push(self, page: ChangesPage, after: int) -> dict[str, int]:
        if self.fail_after_pages is not None and len(self.pages) >= self.fail_after_pages:
            raise PeerUnavailable("link cut")
        self.bytes_sent += 100
        if after > self.cursor:
            body = {"error": "CursorMismatch", "cursor": self.cursor}
            raise PushRejected(409, "CursorMismatch", "behind", body)
        if page.last_seq <= self.cursor:
            return {"applied": 0, "cursor": self.cursor}
        missing = {self.needs[c.seq] for c in page.changes if c.seq in self.needs} - set(self.held)
        if missing:
            body = {"error": "MissingChunks", "missing": sorted(d.hex() for d in missing)}
            raise PushRejected(409, "MissingChunks", "missing", body)
        self.pages.append(page)
        fresh = [c.seq for c in page.changes if c.seq > self.cursor]
        self.applied.extend(fresh)
        self.cursor = page.last_seq
        return {"applied": len(fresh), "duplicates": len(page.changes) - len(fresh),
                "conflicts": 0, "skew_rejected": 0, "cursor": page.last_seq}  # fmt: skip

    async def put_chunk(self, digest: bytes, data: bytes) -> None:
        self.bytes_sent += len(data)
        self.held[digest] = data


def push(store: FakeStore, peer: FakePeer, limit: int = 3) -> Any:
    return run(push_once(store, peer, "them", batch_limit=limit))  # type: ignore[arg-type]


def test_pushes_everything_in_pages_then_sends_nothing() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write(n=7)
    stats = push(store, peer)
    assert peer.applied == list(range(1, 8))
    assert (stats.pages, stats.changes, stats.applied, stats.cursor) == (3, 7, 7, 7)
    assert store.cursors[("them", "push")] == 7 and stats.bytes_sent == 300
    again = push(store, peer)
    assert (again.pages, again.changes, again.bytes_sent) == (0, 0, 0)
    assert len(peer.pages) == 3


def test_changes_from_the_peer_are_not_sent_back_but_passed_over() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write("us", 2)
    store.write("them", 3)
    store.write("elsewhere", 1)  # relayed: goes on to the peer
    stats = push(store, peer, limit=10)
    assert peer.applied == [1, 2, 6]
    assert {c.origin for page in peer.pages for c in page.changes} == {"us", "elsewhere"}
    assert peer.cursor == stats.cursor == 6


def test_only_the_peers_changes_left_still_moves_both_cursors() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write("them", 4)
    stats = push(store, peer)
    assert (stats.changes, peer.cursor, store.cursors[("them", "push")]) == (0, 4, 4)
    assert push(store, peer).pages == 0


def test_missing_chunks_are_uploaded_then_the_page_resent() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write(n=4)
    store.chunks = {b"\x01" * 32: b"one", b"\x02" * 32: b"two"}
    peer.needs = {2: b"\x01" * 32, 4: b"\x02" * 32}
    stats = push(store, peer, limit=10)
    assert peer.held == store.chunks and stats.chunks_sent == 2
    assert peer.applied == [1, 2, 3, 4] and len(peer.pages) == 1
    assert store.cursors[("them", "push")] == 4


def test_a_chunk_gone_here_fails_the_push_without_moving_the_cursor() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write(n=2)
    peer.needs = {1: b"\x09" * 32}
    with pytest.raises(PushFailed, match="not here"):
        push(store, peer)
    assert ("them", "push") not in store.cursors and peer.applied == []


def test_cursor_mismatch_restarts_from_the_peers_cursor() -> None:
    store, peer = FakeStore(), FakePeer()
    store.write(n=6)
    push(store, peer)
    peer.cursor, peer.applied = 2, []  # the peer's data dir went back (restored)
    store.write(n=1)
    stats = push(store, peer)
    assert stats.restarts == 1 and peer.applied == [3, 4, 5, 6, 7]
    assert store.cursors[("them", "push")] == 7 == peer.cursor


def test_a_peer_that_already_pulled_our_log_lets_the_push_jump_ahead() -> None:
    store, peer = FakeStore(), FakePeer(cursor=5)
    store.write(n=6)
    stats = push(store, peer)
    assert peer.applied == [6] and stats.cursor == 6
    # The first page (1-3) is answered with the peer's cursor 5: the next page starts at 6.
    assert [[c.seq for c in page.changes] for page in peer.pages] == [[6]]


def test_a_cut_link_keeps_the_cursor_at_the_last_applied_page() -> None:
    store, peer = FakeStore(), FakePeer(fail_after_pages=1)
    store.write(n=7)
    with pytest.raises(PeerUnavailable):
        push(store, peer)
    assert store.cursors[("them", "push")] == 3
    peer.fail_after_pages = None
    assert push(store, peer).cursor == 7 and peer.applied == list(range(1, 8))


def test_endless_rejections_stop_the_push() -> None:
    class Stubborn(FakePeer):
        async def put_chunk(self, digest: bytes, data: bytes) -> None:
            return None  # the chunk never arrives

    store, peer = FakeStore(), Stubborn()
    store.write(n=1)
    store.chunks = {b"\x01" * 32: b"one"}
    peer.needs = {1: b"\x01" * 32}
    with pytest.raises(PushFailed, match=f"{MAX_REJECTIONS_IN_A_ROW + 1} pushes"):
        push(store, peer)


def test_refuses_to_push_to_itself() -> None:
    store = FakeStore(node_id="them")
    with pytest.raises(Exception, match="itself"):
        push(store, FakePeer())
