"""Access keys besides the root key, stored in ``access_keys``.

These are plain synchronous functions of a ``sqlite3.Connection`` so that the ``lakenode
keys`` command can run them on a stopped data dir or beside a running node (WAL lets both
write; the busy timeout serialises them). Every change bumps ``meta.keys_generation``; the
node polls that number and reloads its key table when it moves, so a new or disabled key
takes effect within a second without a restart. Every change is also journaled
(storage/key_journal.py) before it commits, so keys survive the loss of the database.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import string
from collections.abc import Iterator
from dataclasses import dataclass, field

from storage.catalog import read_meta, write_meta
from storage.clock import SYSTEM_CLOCK, Clock
from storage.errors import StorageError
from storage.key_journal import record_key_change

ACCESS_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]{3,128}$")
STATUSES = ("active", "disabled")


class KeyError_(StorageError):
    """A key operation that cannot be done (unknown key, duplicate, bad value)."""


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str = field(repr=False)  # never printed by accident
    status: str = "active"
    read_only: bool = False
    buckets: tuple[str, ...] = ()
    policy: str = ""
    replication: bool = False
    created_ms: int = 0

    @property
    def active(self) -> bool:
        return self.status == "active"


def generate_pair() -> tuple[str, str]:
    alphabet = string.ascii_uppercase + string.digits
    access = "LK" + "".join(secrets.choice(alphabet) for _ in range(18))
    return access, secrets.token_urlsafe(30)


def _from_row(row: tuple[str, str, str, int, str, str, int, int]) -> AccessKey:
    access, secret, status, read_only, buckets, policy, replication, created_ms = row
    return AccessKey(
        access,
        secret,
        status,
        bool(read_only),
        tuple(json.loads(buckets)),
        policy,
        bool(replication),
        created_ms,
    )


_COLUMNS = "access_key, secret_key, status, read_only, buckets, policy, replication, created_ms"


def list_keys(conn: sqlite3.Connection) -> list[AccessKey]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM access_keys ORDER BY access_key").fetchall()
    return [_from_row(row) for row in rows]


def get_key(conn: sqlite3.Connection, access_key: str) -> AccessKey:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM access_keys WHERE access_key = ?", (access_key,)
    ).fetchone()
    if row is None:
        raise KeyError_(f"no access key {access_key!r}")
    return _from_row(row)


def keys_generation(conn: sqlite3.Connection) -> int:
    return int(read_meta(conn, "keys_generation") or 0)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection (isolation_level=None)."""
    assert conn.isolation_level is None
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _bump(conn: sqlite3.Connection, access_key: str) -> None:
    """Last step of every key change, just before COMMIT: journal it, tell the node."""
    record_key_change(conn, access_key)
    write_meta(conn, "keys_generation", str(keys_generation(conn) + 1))


def create_key(conn: sqlite3.Connection, key: AccessKey, clock: Clock = SYSTEM_CLOCK) -> AccessKey:
    if not ACCESS_KEY_PATTERN.match(key.access_key):
        raise KeyError_("access key must be 3-128 of [A-Za-z0-9._-]")
    if len(key.secret_key) < 8 or any(c.isspace() for c in key.secret_key):
        raise KeyError_("secret key must be at least 8 characters without spaces")
    created = AccessKey(
        key.access_key,
        key.secret_key,
        "active",
        key.read_only,
        key.buckets,
        key.policy,
        key.replication,
        clock.wall_ms(),
    )
    with _transaction(conn):
        if conn.execute(
            "SELECT 1 FROM access_keys WHERE access_key = ?", (key.access_key,)
        ).fetchone():
            raise KeyError_(f"access key {key.access_key!r} already exists")
        conn.execute(
            f"INSERT INTO access_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                created.access_key,
                created.secret_key,
                created.status,
                int(created.read_only),
                json.dumps(list(created.buckets)),
                created.policy,
                int(created.replication),
                created.created_ms,
            ),
        )
        _bump(conn, created.access_key)
    return created


def set_status(conn: sqlite3.Connection, access_key: str, status: str) -> None:
    assert status in STATUSES
    with _transaction(conn):
        get_key(conn, access_key)
        conn.execute("UPDATE access_keys SET status = ? WHERE access_key = ?", (status, access_key))
        _bump(conn, access_key)


def set_policy(conn: sqlite3.Connection, access_key: str, policy: str) -> None:
    """Replace a key's identity policy ("" removes it); the caller has validated it."""
    with _transaction(conn):
        get_key(conn, access_key)
        conn.execute("UPDATE access_keys SET policy = ? WHERE access_key = ?", (policy, access_key))
        _bump(conn, access_key)


def delete_key(conn: sqlite3.Connection, access_key: str) -> None:
    with _transaction(conn):
        get_key(conn, access_key)
        conn.execute("DELETE FROM access_keys WHERE access_key = ?", (access_key,))
        _bump(conn, access_key)
