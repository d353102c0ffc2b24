"""Merkle digests of a site's state, kept up to date by every commit, for `repl validate`.

Each (bucket, key) has a **leaf**: BLAKE3 over its versions' (version id, HLC, origin, kind,
ETag), sorted by version id, tombstones and delete markers included. Leaves are placed by
``khash = BLAKE3(bucket NUL key)``: a 16-ary tree of DEPTH levels addresses them by the first
DEPTH hex digits of khash. Every tree node stores the XOR of the leaves below it, updated in
the same transaction as the change (XOR makes the update one subtraction-and-addition per
level, whatever the order of changes), so two sites compare by walking down only the nodes
whose values differ: the cost grows with the number of differences, not with the number of
objects.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import blake3

DEPTH = 4  # 16^4 = 65,536 leaf ranges: a range holds ~15 keys at a million objects
DIGEST_BYTES = 32
ZERO = bytes(DIGEST_BYTES)


def key_hash(bucket: str, key: str) -> bytes:
    return blake3.blake3(f"{bucket}\0{key}".encode()).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(
        DIGEST_BYTES, "big"
    )


def leaf_digest(conn: sqlite3.Connection, bucket: str, key: str) -> bytes | None:
    """The key's leaf from its version rows, or None when it has none."""
    rows = conn.execute(
        "SELECT version_id, hlc, origin, kind, etag FROM versions WHERE bucket = ? AND key = ?"
        " ORDER BY version_id",
        (bucket, key),
    ).fetchall()
    if not rows:
        return None
    hasher = blake3.blake3(f"{bucket}\0{key}\n".encode())
    for version_id, hlc, origin, kind, etag in rows:
        hasher.update(f"{version_id}\0{hlc}\0{origin}\0{kind}\0{etag}\n".encode())
    return hasher.digest()


def _adjust_nodes(conn: sqlite3.Connection, khash: bytes, delta: bytes) -> None:
    digits = khash.hex()
    for level in range(DEPTH + 1):
        prefix = digits[:level]
        row = conn.execute("SELECT xor FROM digest_nodes WHERE prefix = ?", (prefix,)).fetchone()
        value = _xor(bytes(row[0]) if row else ZERO, delta)
        conn.execute(
            "INSERT INTO digest_nodes (prefix, xor) VALUES (?, ?)"
            " ON CONFLICT (prefix) DO UPDATE SET xor = excluded.xor",
            (prefix, value),
        )


def refresh_key(conn: sqlite3.Connection, bucket: str, key: str) -> None:
    """Recompute one key's leaf after its versions changed, and fold the change upwards."""
    khash = key_hash(bucket, key)
    old_row = conn.execute("SELECT leaf FROM key_digests WHERE khash = ?", (khash,)).fetchone()
    old = bytes(old_row[0]) if old_row else ZERO
    new = leaf_digest(conn, bucket, key)
    if new is None:
        conn.execute("DELETE FROM key_digests WHERE khash = ?", (khash,))
    else:
        conn.execute(
            "INSERT INTO key_digests (khash, bucket, key, leaf) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (khash) DO UPDATE SET leaf = excluded.leaf",
            (khash, bucket, key, new),
        )
    delta = _xor(old, new or ZERO)
    if delta != ZERO:
        _adjust_nodes(conn, khash, delta)


def drop_bucket(conn: sqlite3.Connection, bucket: str) -> None:
    """Remove a deleted bucket's leaves (call after its versions are gone)."""
    for (key,) in conn.execute(
        "SELECT key FROM key_digests WHERE bucket = ?", (bucket,)
    ).fetchall():
        refresh_key(conn, bucket, str(key))


def rebuild(conn: sqlite3.Connection) -> None:
    """Compute every leaf and node from scratch (a data dir written before digests existed)."""
    conn.execute("DELETE FROM key_digests")
    conn.execute("DELETE FROM digest_nodes")
    for bucket, key in conn.execute("SELECT DISTINCT bucket, key FROM versions").fetchall():
        refresh_key(conn, str(bucket), str(key))


@dataclass(frozen=True)
class Leaf:
    bucket: str
    key: str
    leaf: bytes


def node(conn: sqlite3.Connection, prefix: str) -> bytes:
    row = conn.execute("SELECT xor FROM digest_nodes WHERE prefix = ?", (prefix,)).fetchone()
    return bytes(row[0]) if row else ZERO


def children(conn: sqlite3.Connection, prefix: str) -> dict[str, bytes]:
    """The 16 child digests of a node (ZERO for empty children)."""
    assert len(prefix) < DEPTH
    return {prefix + digit: node(conn, prefix + digit) for digit in "0123456789abcdef"}


def leaves(conn: sqlite3.Connection, prefix: str) -> list[Leaf]:
    """The leaves under a deepest-level node (keys whose khash starts with ``prefix``)."""
    assert len(prefix) == DEPTH
    low = bytes.fromhex(prefix + "0" * (2 * DIGEST_BYTES - DEPTH))
    high = bytes.fromhex(prefix + "f" * (2 * DIGEST_BYTES - DEPTH))
    rows = conn.execute(
        "SELECT bucket, key, leaf FROM key_digests WHERE khash BETWEEN ? AND ? ORDER BY khash",
        (low, high),
    ).fetchall()
    return [Leaf(str(b), str(k), bytes(leaf)) for b, k, leaf in rows]
