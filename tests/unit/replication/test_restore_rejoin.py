"""A node restored from a snapshot gets its own lost writes back from a peer, in-process.

Method: node-a writes, node-b pulls it. node-a's data dir is then replaced by one restored
from a snapshot taken before that write (storage/ops/snapshot.py); node-b's router is
served through httpx.ASGITransport. The restored node refuses pushes until it has pulled its
own changes back from the peer, and then serves the lost write again. Real stores, no mocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replication.client import PushRejected
from replication.puller import pull_once
from replication.routes import read_page
from storage.ops.snapshot import restore_snapshot, take_snapshot
from storage.store import Store, StoreConfig
from tests.unit.replication.test_routes_puller import SKEW_MS, client_of
from tests.unit.storage.ops.test_rebuild import Notes
from tests.unit.storage.stores import put_object, read_all, run_with_two_stores, site_of


def test_a_restored_node_pulls_its_lost_writes_back_and_refuses_pushes_until_then(
    tmp_path: Path,
) -> None:
    async def scenario(a: Store, b: Store) -> None:
        site_a, site_b = await site_of(a), await site_of(b)
        await a.create_bucket("s", "owner")
        await pull_once(site_b, client_of(site_a), "node-a", SKEW_MS)
        take_snapshot(a.config.data_dir, tmp_path / "snap", Notes())
        await put_object(a, "s", "lost", b"written after the snapshot")
        await pull_once(site_b, client_of(site_a), "node-a", SKEW_MS)
        await put_object(b, "s", "from-b", b"written on b")

        restore_snapshot(tmp_path / "snap", tmp_path / "restored", Notes())
        restored = await Store.open(StoreConfig(tmp_path / "restored", node_id="node-a"))
        site_restored = await site_of(restored)
        try:
            assert site_restored.repulls_own_changes("node-b")
            page = await read_page(site_b, 0, 100, "node-a")
            with pytest.raises(PushRejected) as refused:
                await client_of(site_restored).push(page, 0)
            assert refused.value.code == "Recovering"

            stats = await pull_once(site_restored, client_of(site_b), "node-b", SKEW_MS)

            assert stats.applied >= 2
            assert not site_restored.repulls_own_changes("node-b")
            for key, data in (("lost", b"written after the snapshot"), ("from-b", b"written on b")):
                manifest = await restored.head_object("s", key)
                assert await read_all(restored, manifest) == data
            assert (await client_of(site_restored).push(page, 0))["applied"] == 0  # all held now
        finally:
            await restored.close()

    run_with_two_stores(scenario, tmp_path)
