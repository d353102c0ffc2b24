"""Merkle validation between two real stores: agreement, each kind of difference, and cost.

Method: two stores converge through the storage-level replication helper, then one diverges;
compare() must name exactly the diverging keys and read few nodes doing so.
"""

from __future__ import annotations

from pathlib import Path

from replication.validate import compare
from storage.digest import DEPTH
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_two_stores, site_of
from tests.unit.storage.sync.test_apply import replicate


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
