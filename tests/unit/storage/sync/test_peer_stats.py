"""Replication facts kept on disk: backlog from the change log, counters across reopening.

Method: real stores in temporary dirs; conflicts are made by applying a remote change that
loses to a newer local write, then the data dir is closed and reopened.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.conditions import WriteCondition
from storage.hlc import LOGICAL_BITS
from storage.manifest import decode
from storage.store import Store, StoreConfig
from storage.sync.conflicts import list_conflicts
from storage.sync.feed import Change
from storage.sync.peer_stats import PeerCounters
from tests.unit.storage.stores import put_object, site_of


async def copy_chunks(source: Store, target: Store, changes: list[Change]) -> None:
    """Give ``target`` the chunks of ``changes`` (as replication sends them first)."""
    site_source, site_target = await site_of(source), await site_of(target)
    for change in changes:
        if change.manifest is not None:
            for chunk in decode(change.manifest).chunks:
                data = await site_source.read_chunk_by_hash(chunk.blake3)
                assert data is not None
                await site_target.store_chunk(data)


def test_backlog_counts_changes_after_a_seq_without_one_origin(tmp_path: Path) -> None:
    async def main() -> None:
        store = await Store.open(StoreConfig(tmp_path / "d", node_id="here"))
        site = await site_of(store)
        try:
            empty = await site.repl_backlog(0, "peer")
            assert (empty.ops, empty.bytes, empty.oldest_hlc) == (0, 0, None)
            await store.create_bucket("bkt", "owner")
            first = await site.last_seq()
            await put_object(store, "bkt", "a", b"x" * 10)
            await put_object(store, "bkt", "b", b"y" * 5)
            pending = await site.repl_backlog(first, "peer")
            assert (pending.ops, pending.bytes) == (2, 15)
            assert pending.oldest_hlc is not None and pending.oldest_hlc >> LOGICAL_BITS > 0
            assert (await site.repl_backlog(first, "here")).ops == 0  # all ours: excluded
            assert (await site.repl_backlog(await site.last_seq(), "peer")).ops == 0
        finally:
            await store.close()

    asyncio.run(main())


def test_conflicts_are_counted_with_the_apply_and_counters_survive_reopening(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        a = await Store.open(StoreConfig(tmp_path / "a", node_id="node-a"))
        b = await Store.open(StoreConfig(tmp_path / "b", node_id="node-b"))
        site_a, site_b = await site_of(a), await site_of(b)
        try:
            await a.create_bucket("bkt", "owner")
            await put_object(a, "bkt", "k", b"old")
            changes = await site_a.changes_after(0, 100, None)
            await b.create_bucket("bkt", "owner")
            await put_object(b, "bkt", "k", b"newer")  # b's write is later: a's loses here
            await copy_chunks(a, b, changes)
            result = await site_b.apply_remote("node-a", changes, await site_a.last_seq(), 1000)
            assert result.conflicts == 1 and result.conditional_conflicts == 0
            await site_b.add_repl_counters("node-a", PeerCounters(bytes_received=123))
            await site_b.add_repl_counters("node-a", PeerCounters(apply_errors={"protocol": 2}))
            await site_b.add_repl_counters("node-a", PeerCounters())  # nothing: no commit
        finally:
            await a.close()
            await b.close()
        reopened = await Store.open(StoreConfig(tmp_path / "b"))
        site_reopened = await site_of(reopened)
        try:
            counters = (await site_reopened.repl_counters())["node-a"]
            assert (counters.conflicts, counters.bytes_received) == (1, 123)
            assert counters.apply_errors == {"protocol": 2} and counters.skew_rejections == 0
            rows = {(row.peer, row.direction) for row in await site_reopened.peer_cursors()}
            assert ("node-a", "pull") in rows
        finally:
            await reopened.close()

    asyncio.run(main())


def test_conflicts_with_a_conditional_write_are_counted_apart(tmp_path: Path) -> None:
    """Both sites create one key with If-None-Match: * (each condition holds locally); LWW
    keeps the later write, and the conflict is counted as involving a conditional write."""

    async def main() -> None:
        a = await Store.open(StoreConfig(tmp_path / "a", node_id="node-a"))
        b = await Store.open(StoreConfig(tmp_path / "b", node_id="node-b"))
        site_a, site_b = await site_of(a), await site_of(b)
        try:
            create_only = WriteCondition(if_none_match_any=True)
            for store in (a, b):
                await store.create_bucket("bkt", "owner")
            for store, body in ((a, b"from a"), (b, b"from b, later")):
                condition = await store.observe_condition("bkt", "k", create_only)
                await put_object(store, "bkt", "k", body, condition=condition)
            changes = await site_a.changes_after(0, 100, None)
            await copy_chunks(a, b, changes)
            result = await site_b.apply_remote("node-a", changes, await site_a.last_seq(), 1000)
            assert (result.conflicts, result.conditional_conflicts) == (1, 1)
            counters = (await site_b.repl_counters())["node-a"]
            assert (counters.conflicts, counters.conditional_conflicts) == (1, 1)
            records = await b.inspect(list_conflicts, "bkt", 0, 10)
            assert [(r.key, r.origin, r.conditional) for r in records] == [("k", "node-a", True)]
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
