"""The Merkle digest kept up by every commit equals the one computed from scratch: leaves
from the version rows (digest.rebuild), every node the XOR of the leaves below it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage import digest
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_store


def _tree(conn: sqlite3.Connection) -> tuple[dict[str, bytes], dict[bytes, bytes]]:
    nodes = {str(p): bytes(x) for p, x in conn.execute("SELECT prefix, xor FROM digest_nodes")}
    leaves = {bytes(k): bytes(v) for k, v in conn.execute("SELECT khash, leaf FROM key_digests")}
    # A node whose leaves cancelled out holds zeros, the same digest as no row at all.
    return {p: x for p, x in nodes.items() if x != digest.ZERO}, leaves


def _nodes_from_leaves(leaves: dict[bytes, bytes]) -> dict[str, bytes]:
    """Each node on every leaf's path, as the XOR of the leaves under it (no digest code)."""
    nodes: dict[str, int] = {}
    for khash, leaf in leaves.items():
        for level in range(digest.DEPTH + 1):
            prefix = khash.hex()[:level]
            nodes[prefix] = nodes.get(prefix, 0) ^ int.from_bytes(leaf, "big")
    return {p: x.to_bytes(digest.DIGEST_BYTES, "big") for p, x in nodes.items() if x}


def test_incremental_digest_equals_a_rebuild(tmp_path: Path) -> None:
    async def writes(store: Store) -> None:
        await store.create_bucket("v", "owner")
        await store.set_versioning("v", "Enabled")
        for i in range(40):
            await put_object(store, "b", f"k{i}", b"x" * i)
            await put_object(store, "v", f"k{i % 7}", b"y" * i)
        for i in range(0, 40, 3):
            await store.delete_object("b", f"k{i}")
            await store.delete_object("v", f"k{i % 7}")
        await put_object(store, "b", "k0", b"again")

    run_with_store(writes, tmp_path)
    with sqlite3.connect(tmp_path / "meta.db") as conn:
        nodes, leaves = _tree(conn)
        assert nodes == _nodes_from_leaves(leaves)
        digest.rebuild(conn)
        assert _tree(conn) == (nodes, leaves)
