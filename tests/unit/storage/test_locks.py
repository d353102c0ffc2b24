"""storage/locks.py on a migrated catalog: merging in lock states and what they protect."""

from __future__ import annotations

import sqlite3

from storage.lock_state import LockState
from storage.locks import HELD, get_lock, is_protected, merge_lock
from storage.lww import Stamp
from storage.schema import migrate


def catalog() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    return conn


def test_states_merge_in_and_protection_follows() -> None:
    conn = catalog()
    assert get_lock(conn, "b", "k", "v1") is None
    stamp = Stamp(10, "node-a")
    merge_lock(conn, "b", "k", "v1", LockState().with_compliance(5_000), stamp)
    assert is_protected(conn, "b", "k", "v1", 4_999)
    assert not is_protected(conn, "b", "k", "v1", 5_000)
    merged = merge_lock(conn, "b", "k", "v1", LockState().with_compliance(1_000), Stamp(5, "b"))
    assert merged.compliance_until_ms == 5_000  # an older, shorter date changes nothing
    held = merge_lock(conn, "b", "k", "v1", LockState().with_hold(Stamp(20, "node-b")), stamp)
    assert held.legal_hold and get_lock(conn, "b", "k", "v1") == held
    assert is_protected(conn, "b", "k", "v1", HELD - 1)
    released = merge_lock(conn, "b", "k", "v1", held.without_hold(), Stamp(30, "node-a"))
    assert not released.legal_hold
    assert not is_protected(conn, "b", "k", "v1", 5_000)
    assert not is_protected(conn, "b", "k", "other", 0)
