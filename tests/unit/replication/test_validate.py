"""Merkle validation between two real stores: agreement, each kind of difference, and cost.

Method: two stores converge through the storage-level replication helper, then one diverges;
compare() must name exactly the diverging keys and read few nodes doing so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from replication.validate import WALK_CONCURRENCY, DigestSource, WalkStats, compare, explain
from storage.digest import DEPTH, KeyFacts, Leaf
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_two_stores, site_of
from tests.unit.storage.sync.test_apply import replicate

T = TypeVar("T")


def test_converged_sites_agree_after_one_comparison(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("bkt", "owner")
        for i in range(300):
            await put_object(a, "bkt", f"k{i}", str(i).encode())
        await a.delete_object("bkt", "k7")
        await replicate(a, b)
        differences, stats = await compare(site_a, site_b)
        assert differences == []
        assert stats.nodes_compared == 1

    run_with_two_stores(body, tmp_path, chunk_bytes=4 << 20)


def test_each_divergence_is_named_and_costs_few_reads(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("bkt", "owner")
        for i in range(300):
            await put_object(a, "bkt", f"k{i}", str(i).encode())
        await replicate(a, b)
        await put_object(a, "bkt", "only-on-a", b"x")  # missing on b
        await put_object(b, "bkt", "k1", b"changed on b")  # different content
        await b.delete_object("bkt", "k2")  # tombstone on b only
        differences, stats = await compare(site_a, site_b)
        assert [(d.bucket, d.key) for d in differences] == [
            ("bkt", "k1"),
            ("bkt", "k2"),
            ("bkt", "only-on-a"),
        ]
        only_on_a = differences[2]
        assert only_on_a.local is not None and only_on_a.remote is None
        assert stats.leaf_ranges_compared <= 3
        assert stats.nodes_compared <= 1 + 3 * DEPTH * 16
        await replicate(a, b)
        await replicate(b, a)
        assert (await compare(site_a, site_b))[0] == []

    run_with_two_stores(body, tmp_path, chunk_bytes=4 << 20)


class InFlight:
    """Delegates to a real site and records how many of its questions were open at once."""

    def __init__(self, site: DigestSource, counter: list[int]) -> None:
        self._site = site
        self._counter = counter  # [open now, most open at once], shared by both sides

    async def _ask(self, question: Awaitable[T]) -> T:
        self._counter[0] += 1
        self._counter[1] = max(self._counter)
        try:
            await asyncio.sleep(0)  # let the other questions of the walk start
            return await question
        finally:
            self._counter[0] -= 1

    async def digest_node(self, prefix: str) -> bytes:
        return await self._ask(self._site.digest_node(prefix))

    async def digest_children(self, prefix: str) -> dict[str, bytes]:
        return await self._ask(self._site.digest_children(prefix))

    async def digest_leaves(self, prefix: str) -> list[Leaf]:
        return await self._ask(self._site.digest_leaves(prefix))

    async def key_facts(self, bucket: str, key: str) -> KeyFacts:
        return await self._ask(self._site.key_facts(bucket, key))

    async def facts_page(self, after: tuple[str, str] | None, keys: int) -> list[KeyFacts]:
        return await self._ask(self._site.facts_page(after, keys))

    async def purge_cutoff(self) -> int:
        return await self._ask(self._site.purge_cutoff())


def test_the_walk_asks_both_sides_and_many_nodes_at_once_within_its_bound(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("bkt", "owner")
        for i in range(100):
            await put_object(a, "bkt", f"k{i}", str(i).encode())
        await replicate(a, b)
        for i in range(60):  # 60 differences spread over the tree
            await put_object(b, "bkt", f"k{i}", b"changed on b")
        counter = [0, 0]
        local, remote = InFlight(site_a, counter), InFlight(site_b, counter)
        differences, _ = await compare(local, remote)
        explained = await explain(differences, local, remote, WalkStats())
        assert [d.key for d in explained] == sorted(f"k{i}" for i in range(60))
        assert all(d.remote_facts is not None for d in explained)
        assert 2 < counter[1] <= 2 * WALK_CONCURRENCY
        assert counter[0] == 0

    run_with_two_stores(body, tmp_path, chunk_bytes=4 << 20)
