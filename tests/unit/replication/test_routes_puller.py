"""Routes and puller together, in-process: real stores, the real router over ASGI, no sockets.

Method: node A's router is served through httpx.ASGITransport; a PeerClient on it feeds
pull_once into node B's store; then what B serves is compared with A. Route error cases are
exercised through the same client plumbing (PeerRefused carries the JSON error).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import blake3
import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request

from replication import protocol
from replication.client import ChunkNotFound, PeerClient, PeerRefused, PushRejected, RetryPolicy
from replication.protocol import ChangesPage, ProtocolError
from replication.puller import PeerState, check_page, identify_peer, pull_forever, pull_once
from replication.routes import StoreUnavailable, build_router, read_page
from storage.errors import NoSuchKey
from storage.store import Store
from storage.sync.site import SyncSite
from tests.unit.storage.stores import (
    current_objects,
    put_object,
    run_with_two_stores,
    site_of,
)
from tests.unit.storage.sync.locking import hold, set_lock
from tests.unit.storage.sync.test_apply_locks import (
    BUCKET,
    delete_from_elsewhere,
    not_pulled,
    only_on_a,
)

SKEW_MS = 1000
FAST = RetryPolicy(attempts=2, total_s=1.0, initial_s=0.01, max_s=0.01, jitter_s=0.0)


def no_signature(
    method: str, url: str, headers: Mapping[str, str], payload_hash: str
) -> dict[str, str]:
    return dict(headers)


async def allow(_request: Request) -> None:
    return None


async def deny(_request: Request) -> None:
    raise HTTPException(403, "not a replication key")


def client_of(
    site: SyncSite | None, authorize: Callable[[Request], Awaitable[None]] = allow
) -> PeerClient:
    def current() -> SyncSite:
        if site is None:
            raise StoreUnavailable("closed")
        return site

    app = FastAPI()
    app.include_router(build_router(current, authorize, max_skew_ms=SKEW_MS))
    transport = httpx.ASGITransport(app=app)
    return PeerClient("http://peer", no_signature, 5.0, retry=FAST, transport=transport)


def test_pull_converges_in_pages_and_then_idles(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("docs", "owner")
        big = os.urandom(3 * (1 << 20) + 5)
        await put_object(a, "docs", "big", big)
        for i in range(5):
            await put_object(a, "docs", f"k{i}", f"v{i}".encode())
        await put_object(a, "docs", "gone", b"x")
        await a.delete_object("docs", "gone")
        client = client_of(site_a)
        state = PeerState(url=client.base_url)
        stats = await pull_once(site_b, client, "node-a", SKEW_MS, batch_limit=3, state=state)
        assert stats.pages == 4  # 9 changes, 3 per page, then an empty page with no more
        assert (stats.changes, stats.applied, stats.duplicates) == (9, 9, 0)
        assert stats.chunks_fetched == 4 + 5 + 1
        assert stats.bytes_received > len(big)
        assert stats.cursor == await site_a.last_seq() == await site_b.get_cursor("node-a", "pull")
        assert await current_objects(b, "docs") == await current_objects(a, "docs")
        with pytest.raises(NoSuchKey):
            await b.head_object("docs", "gone")
        assert state.clock_offset_ms is not None and abs(state.clock_offset_ms) < 1000
        again = await pull_once(site_b, client, "node-a", SKEW_MS)
        assert (again.pages, again.changes, again.chunks_fetched) == (1, 0, 0)
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_two_way_pull_does_not_loop(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        from_a, from_b = client_of(site_a), client_of(site_b)
        await a.create_bucket("shared", "owner")
        await pull_once(site_b, from_a, "node-a", SKEW_MS)
        await put_object(b, "shared", "made-on-b", b"b")
        await put_object(a, "shared", "made-on-a", b"a")
        a_seq, b_seq = await site_a.last_seq(), await site_b.last_seq()
        to_a = await pull_once(site_a, from_b, "node-b", SKEW_MS)
        to_b = await pull_once(site_b, from_a, "node-a", SKEW_MS)
        assert (to_a.applied, to_b.applied) == (1, 1)  # each other's put; nothing sent home
        assert (await site_a.last_seq(), await site_b.last_seq()) == (a_seq + 1, b_seq + 1)
        for _ in range(2):  # quiescent: no change travels back and forth
            assert (await pull_once(site_a, from_b, "node-b", SKEW_MS)).changes == 0
            assert (await pull_once(site_b, from_a, "node-a", SKEW_MS)).changes == 0
        assert (await site_a.last_seq(), await site_b.last_seq()) == (a_seq + 1, b_seq + 1)
        assert await current_objects(a, "shared") == await current_objects(b, "shared")
        await from_a.close()
        await from_b.close()

    run_with_two_stores(body, tmp_path)


def test_excluded_changes_still_advance_the_cursor(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await b.create_bucket("x", "owner")
        from_b = client_of(site_b)
        await pull_once(site_a, from_b, "node-b", SKEW_MS)  # a now relays b's change
        # b pulls a's log: its only change originated at b, so the page is empty but the
        # cursor moves past it (never re-examined).
        page = await read_page(site_a, 0, 10, "node-b")
        assert page.changes == [] and page.last_seq == await site_a.last_seq() and not page.more
        stats = await pull_once(site_b, client_of(site_a), "node-a", SKEW_MS)
        assert stats.changes == 0 and await site_b.get_cursor("node-a", "pull") == page.last_seq
        await from_b.close()

    run_with_two_stores(body, tmp_path)


def test_chunk_routes(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        client = client_of(site_a)
        data = b"pushed chunk"
        digest = blake3.blake3(data).digest()
        with pytest.raises(ChunkNotFound):
            await client.chunk(digest)
        with pytest.raises(PeerRefused) as caught:
            await client.put_chunk(digest, b"other bytes")
        assert (caught.value.status, caught.value.code) == (400, "ChunkMismatch")
        assert await site_a.missing_chunks([digest]) == {digest}
        await client.put_chunk(digest, data)
        assert await client.chunk(digest) == data
        answer = await client._http.get(f"{client.base_url}/_lakenode/repl/chunks/ABC")
        assert answer.status_code == 400 and answer.json()["error"] == "ProtocolError"
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_push_route(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("p", "owner")
        await put_object(a, "p", "k", b"pushed data")
        page = await read_page(site_a, 0, 100, "node-b")
        to_b = client_of(site_b)
        with pytest.raises(PushRejected) as caught:
            await to_b.push(page, 0)
        assert caught.value.code == "MissingChunks" and len(caught.value.missing) == 1
        with pytest.raises(PushRejected) as gap:  # b holds nothing of a's log yet: a gap
            await to_b.push(await read_page(site_a, 1, 100, "node-b"), 1)
        assert gap.value.code == "CursorMismatch" and gap.value.body["cursor"] == 0
        for digest in caught.value.missing:
            await to_b.put_chunk(digest, await site_a.read_chunk_by_hash(digest) or b"")
        counts = await to_b.push(page, 0)
        assert counts["applied"] == 2 and counts["cursor"] == page.last_seq
        assert await site_b.get_cursor("node-a", "pull") == page.last_seq
        assert await current_objects(b, "p") == await current_objects(a, "p")
        assert (await to_b.push(page, 0))["applied"] == 0  # already held: nothing to do
        with pytest.raises(PeerRefused, match="at or before 'after'"):
            await to_b.push(page, 1)
        own = ChangesPage("node-b", [], last_seq=0, more=False, now_ms=0)
        with pytest.raises(PeerRefused, match="its own change log"):
            await to_b.push(own, 0)
        await to_b.close()

    run_with_two_stores(body, tmp_path)


def test_every_route_asks_authorize_first(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        client = client_of(site_a, deny)
        digest = bytes(32)
        page = ChangesPage("node-x", [], last_seq=0, more=False, now_ms=0)
        for call in (
            client.info(),
            client.changes(0, 10, None),
            client.chunk(digest),
            client.put_chunk(digest, b"x"),
            client.push(page, 0),
        ):
            with pytest.raises(PeerRefused) as caught:
                await call
            assert (caught.value.status, caught.value.code) == (403, "AccessDenied")
            assert caught.value.body["message"] == "not a replication key"
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_bad_query_parameters(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        client = client_of(site_a)
        for query in ("after=-1", "after=x", "limit=0", "exclude_origin=a%2Fb", "after=1e3"):
            answer = await client._http.get(f"{client.base_url}/_lakenode/repl/changes?{query}")
            assert answer.status_code == 400, query
            assert answer.json()["error"] == "BadRequest"
        answer = await client._http.post(f"{client.base_url}/_lakenode/repl/push", content=b"{}")
        assert answer.status_code == 400 and "'after' is required" in answer.json()["message"]
        answer = await client._http.post(
            f"{client.base_url}/_lakenode/repl/push?after=0", content=b"{]"
        )
        assert answer.status_code == 400 and answer.json()["error"] == "ProtocolError"
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_unavailable_store_is_503() -> None:
    async def body() -> None:
        client = client_of(None)
        answer = await client._http.get(f"{client.base_url}/_lakenode/repl/info")
        assert answer.status_code == 503 and answer.json()["error"] == "Unavailable"
        await client.close()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("page", "cursor", "message"),
    [
        (ChangesPage("node-z", [], 5, False, 0), 5, "expected the log of node node-a"),
        (ChangesPage("node-a", [], 4, False, 0), 5, "before this node's cursor 5"),
        (ChangesPage("node-a", [], 5, True, 0), 5, "makes no progress"),
    ],
)
def test_page_checks(page: ChangesPage, cursor: int, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        check_page(page, "node-a", cursor)


def test_identify_refuses_to_pull_from_itself(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        client = client_of(site_a)
        with pytest.raises(ProtocolError, match="is this node"):
            await identify_peer(site_a, client, PeerState(url=client.base_url))
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_pull_forever_converges_and_stops_on_cancel(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        client = client_of(site_a)
        state = PeerState(url=client.base_url)
        task = asyncio.create_task(pull_forever(site_b, client, state, SKEW_MS, interval_s=0.01))
        await a.create_bucket("live", "owner")
        await put_object(a, "live", "k", b"v")
        for _ in range(500):
            if state.cursor == await site_a.last_seq():
                break
            await asyncio.sleep(0.01)
        assert state.node_id == "node-a" and state.totals.applied == 2
        expected = await a.head_object("live", "k")
        assert await current_objects(b, "live") == {"k": (expected.etag, b"v")}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()

    run_with_two_stores(body, tmp_path)


def test_pull_forever_backs_off_and_records_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(_a: Store, b: Store) -> None:
        site_b = await site_of(b)

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        client = PeerClient(
            "http://down", no_signature, 1.0, retry=FAST, transport=httpx.MockTransport(refuse)
        )
        state = PeerState(url=client.base_url)
        task = asyncio.create_task(pull_forever(site_b, client, state, SKEW_MS, interval_s=0.01))
        for _tick in range(500):  # at least two failed rounds, however loaded the machine
            if state.consecutive_failures >= 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert state.consecutive_failures >= 2
        assert state.last_error is not None and "ConnectError" in state.last_error
        assert state.node_id is None
        await client.close()

    run_with_two_stores(body, tmp_path)
    assert "peer http://down unavailable" in caplog.text


def test_page_limit_and_size_bound(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        for i in range(3):
            await a.create_bucket(f"b{i}", "owner")
        page = await read_page(site_a, 0, 2, None)
        assert [c.seq for c in page.changes] == [1, 2] and page.more and page.last_seq == 2
        rest = await read_page(site_a, 2, 2, None)
        assert [c.seq for c in rest.changes] == [3] and not rest.more and rest.last_seq == 3
        assert protocol.decode_page(protocol.encode_page(rest)) == rest

    run_with_two_stores(body, tmp_path)


def test_the_puller_fetches_a_lock_changes_chunks_and_the_version_comes_back(
    tmp_path: Path,
) -> None:
    """A version.lock carries its version's manifest: the puller fetches its chunks like an
    object.put's, so a site that removed the version (here: never got its put, and applied a
    third site's delete of it) brings it back, readable, when the lock arrives."""

    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        version = await only_on_a(a, b, os.urandom(100_000))
        await set_lock(a, BUCKET, "k", version.version_id, hold)
        put, _lock = await not_pulled(a, b)
        await site_b.apply_remote("node-c", [delete_from_elsewhere(version)], 1, SKEW_MS)
        await site_b.set_cursor("node-a", "pull", put.seq)  # the lock alone is left to pull
        client = client_of(site_a)
        stats = await pull_once(site_b, client, "node-a", SKEW_MS, state=PeerState(client.base_url))
        assert stats.applied == 1 and stats.chunks_fetched == len(version.chunks) > 0
        assert await current_objects(b, BUCKET) == await current_objects(a, BUCKET)

    run_with_two_stores(body, tmp_path)
