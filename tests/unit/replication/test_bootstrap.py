"""Bootstrap over the real router in-process (ASGI, no sockets): route, client, resume.

Method: node A's router is served through httpx.ASGITransport; ``bootstrap`` fills B from
it. An interrupted run (a page whose apply fails) leaves a durable record; the next run
resumes from it, fetching fewer pages, and B ends equal to A.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from replication import protocol
from replication.bootstrap import BootstrapProgress, BootstrapRefused, bootstrap
from replication.client import PeerClient, PeerRefused
from replication.protocol import ProtocolError
from storage.store import Store
from storage.sync.apply import ApplyResult
from storage.sync.bootstrap_state import BootstrapRecord
from storage.sync.feed import Change
from tests.unit.replication.test_routes_puller import SKEW_MS, client_of
from tests.unit.storage.stores import current_objects, put_object, run_with_two_stores, site_of


class Interrupted(Exception):
    pass


def test_snapshot_route_pages_and_bad_positions(tmp_path: Path) -> None:
    async def body(a: Store, _b: Store) -> None:
        site_a = await site_of(a)
        await a.create_bucket("bkt", "owner")
        for i in range(5):
            await put_object(a, "bkt", f"k{i}", b"x")
        async with client_of(site_a) as client:
            first = await client.snapshot(None, 2)
            assert first.snapshot_seq == await site_a.last_seq() and first.objects_total == 5
            assert first.next is not None and [c.op for c in first.changes] == [
                "bucket.create",
                "object.put",
            ]
            second = await client.snapshot(first.next, 1000)
            assert second.snapshot_seq is None and second.next is None
            assert len(second.changes) == 4
            for bad in ("%%%", "bm90IGpzb24", protocol.encode_position(("a", "b", "c")) + "!"):
                with pytest.raises(PeerRefused):
                    await client.snapshot(bad, 10)
        with pytest.raises(ProtocolError):
            protocol.decode_position(protocol.encode_position(("a", "b", "c"))[:-3])

    run_with_two_stores(body, tmp_path)


def test_bootstrap_resumes_after_an_interruption_and_refuses_other_data(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("bkt", "owner")
        for i in range(20):
            await put_object(a, "bkt", f"k{i:02}", os.urandom(3000))
        applied_pages = 0
        original = site_b.apply_snapshot_page

        async def failing(changes: list[Change], record: BootstrapRecord, skew: int) -> ApplyResult:
            nonlocal applied_pages
            if applied_pages == 3:
                raise Interrupted
            applied_pages += 1
            return await original(changes, record, skew)

        site_b.apply_snapshot_page = failing  # type: ignore[method-assign]
        async with client_of(site_a) as client:
            with pytest.raises(Interrupted):
                await bootstrap(site_b, client, "node-a", SKEW_MS, page_size=4)
        site_b.apply_snapshot_page = original  # type: ignore[method-assign]
        record = await site_b.bootstrap_record()
        assert record is not None and record.pages == 3 and record.position is not None
        snapshot_seq = record.snapshot_seq
        await put_object(a, "bkt", "k00", b"rewritten while interrupted")
        await put_object(a, "bkt", "late", b"late")
        seen: list[int] = []

        def progress(state: BootstrapProgress, _client: PeerClient) -> None:
            seen.append(state.pages_total)

        async with client_of(site_a) as client:
            with pytest.raises(BootstrapRefused):
                await bootstrap(site_b, client, "node-other", SKEW_MS)
            state = await bootstrap(site_b, client, "node-a", SKEW_MS, progress, page_size=4)
        assert state.resumed and state.snapshot_seq == snapshot_seq
        assert seen == [4, 5, 6]  # 21 changes in pages of 4: the last 3 pages only
        # "late" sorts after the position reached: a page carries it, and the log after the
        # snapshot seq again (a duplicate); the rewrite of k00, before it, only the log does.
        assert state.objects_done == 21 and state.ratio == 1.0
        assert (state.catch_up.applied, state.catch_up.duplicates) == (1, 1)
        assert await current_objects(b, "bkt") == await current_objects(a, "bkt")
        assert await site_b.bootstrap_record() is None
        assert await site_b.bootstrap_progress() == {"node-a": 1.0}
        # Again: only catches up. Into a site holding other data: refused.
        async with client_of(site_a) as client:
            again = await bootstrap(site_b, client, "node-a", SKEW_MS)
            assert again.pages == 0 and again.catch_up.applied == 0
        async with client_of(site_b) as client:
            with pytest.raises(BootstrapRefused):
                await bootstrap(site_a, client, "node-b", SKEW_MS)

    run_with_two_stores(body, tmp_path)
