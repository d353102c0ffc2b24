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
from typing import Any

import blake3

from storage.manifest import decode

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


_NODES_ON_PATH = (
    f"SELECT prefix, xor FROM digest_nodes WHERE prefix IN ({', '.join('?' * (DEPTH + 1))})"
)


def _adjust_nodes(conn: sqlite3.Connection, khash: bytes, delta: bytes) -> None:
    """XOR ``delta`` into the DEPTH + 1 nodes on the key's path: one read and one batch of
    writes for the whole path (every write commits one, so this runs once per change)."""
    digits = khash.hex()
    prefixes = [digits[:level] for level in range(DEPTH + 1)]
    current = dict(conn.execute(_NODES_ON_PATH, prefixes).fetchall())
    conn.executemany(
        "INSERT INTO digest_nodes (prefix, xor) VALUES (?, ?)"
        " ON CONFLICT (prefix) DO UPDATE SET xor = excluded.xor",
        [(prefix, _xor(bytes(current.get(prefix, ZERO)), delta)) for prefix in prefixes],
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


# ---- what each side holds, for printing differences and for `validate --deep` ---------------

PURGE_CUTOFF = "tombstone_purge_cutoff"  # meta: tombstones older than this HLC may be purged


@dataclass(frozen=True)
class VersionFact:
    """One version of a key as validate compares it (chunk hashes for --deep)."""

    version_id: str
    hlc: int
    origin: str
    kind: int
    etag: str
    size: int
    chunks: tuple[bytes, ...]


@dataclass(frozen=True)
class KeyFacts:
    bucket: str
    key: str
    versions: tuple[VersionFact, ...]


def _facts(rows: list[Any]) -> list[KeyFacts]:
    grouped: dict[tuple[str, str], list[VersionFact]] = {}
    for bucket, key, version_id, hlc, origin, kind, etag, size, manifest in rows:
        chunks = tuple(chunk.blake3 for chunk in decode(bytes(manifest)).chunks)
        fact = VersionFact(version_id, hlc, origin, kind, etag, size, chunks)
        grouped.setdefault((bucket, key), []).append(fact)
    return [KeyFacts(bucket, key, tuple(versions)) for (bucket, key), versions in grouped.items()]


_FACT_COLUMNS = "bucket, key, version_id, hlc, origin, kind, etag, size, manifest"


def key_facts(conn: sqlite3.Connection, bucket: str, key: str) -> KeyFacts:
    rows = conn.execute(
        f"SELECT {_FACT_COLUMNS} FROM versions WHERE bucket = ? AND key = ? ORDER BY version_id",
        (bucket, key),
    ).fetchall()
    found = _facts(rows)
    return found[0] if found else KeyFacts(bucket, key, ())


def facts_page(
    conn: sqlite3.Connection, after: tuple[str, str] | None, keys: int
) -> list[KeyFacts]:
    """Up to ``keys`` keys after ``after`` in (bucket, key) order, every version of each."""
    low = after or ("", "")
    heads = conn.execute(
        "SELECT DISTINCT bucket, key FROM versions WHERE (bucket, key) > (?, ?)"
        " ORDER BY bucket, key LIMIT ?",
        (*low, keys),
    ).fetchall()
    if not heads:
        return []
    high = (str(heads[-1][0]), str(heads[-1][1]))
    rows = conn.execute(
        f"SELECT {_FACT_COLUMNS} FROM versions WHERE (bucket, key) > (?, ?)"
        " AND (bucket, key) <= (?, ?) ORDER BY bucket, key, version_id",
        (*low, *high),
    ).fetchall()
    return _facts(rows)


def purge_cutoff(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (PURGE_CUTOFF,)).fetchone()
    return int(row[0]) if row else 0
