"""What a listing costs in SQLite work: proportional to what it returns, not to what it skips.

The work is counted in SQLite virtual machine steps (``set_progress_handler`` called every
step), so the test is deterministic and needs no timing. A delimiter listing of 100
sub-prefixes must cost about the same whether each sub-prefix holds 2 keys or 200 (the walk
seeks past each group), and a prefix listing must not read the keys that sort after it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.listing import list_latest, list_versions
from storage.manifest import Kind
from storage.schema import migrate

GROUPS = 100


def _catalog(keys_per_group: int) -> sqlite3.Connection:
    """Bucket b: p/g000/k0000 ... p/g099/k...; plus keys after p/ (q/...) to be left alone."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.execute(
        "INSERT INTO buckets (name, owner, created_ms, hlc, origin) VALUES ('b', 'o', 0, 0, 'n')"
    )
    keys = [f"p/g{g:03d}/k{k:04d}" for g in range(GROUPS) for k in range(keys_per_group)]
    keys += [f"q/{n:05d}" for n in range(GROUPS * keys_per_group)]
    conn.executemany(
        "INSERT INTO versions (bucket, key, version_id, kind, hlc, origin, size, etag,"
        " last_modified_ms, is_latest, manifest) VALUES ('b', ?, 'v', ?, 1, 'n', 1, 'e', 0, 1,"
        " x'')",
        [(key, int(Kind.OBJECT)) for key in keys],
    )
    return conn


def sqlite_steps(conn: sqlite3.Connection, listing: Callable[[], object]) -> int:
    """SQLite virtual machine steps ``listing()`` takes on ``conn`` (other cost tests too)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        listing()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def test_delimiter_listing_cost_does_not_grow_with_keys_under_each_prefix() -> None:
    few, many = _catalog(2), _catalog(200)
    for conn in (few, many):
        page = list_latest(conn, "b", "p/", "/", "", 1000)
        assert len(page.common_prefixes) == GROUPS and not page.entries
    cheap = sqlite_steps(few, lambda: list_latest(few, "b", "p/", "/", "", 1000))
    dear = sqlite_steps(many, lambda: list_latest(many, "b", "p/", "/", "", 1000))
    # Only the depth of the index grows (log of the key count).
    assert dear < 1.5 * cheap, (cheap, dear)


def test_version_listing_with_delimiter_costs_the_same_way() -> None:
    few, many = _catalog(2), _catalog(200)
    cheap = sqlite_steps(few, lambda: list_versions(few, "b", "p/", "/", "", "", 1000))
    dear = sqlite_steps(many, lambda: list_versions(many, "b", "p/", "/", "", "", 1000))
    assert len(list_versions(many, "b", "p/", "/", "", "", 1000).common_prefixes) == GROUPS
    assert dear < 1.5 * cheap, (cheap, dear)


def test_prefix_listing_reads_nothing_after_the_prefix() -> None:
    conn = _catalog(2)
    page = list_latest(conn, "b", "p/g099/", "", "", 1000)
    assert [e.key for e in page.entries] == ["p/g099/k0000", "p/g099/k0001"]
    alone = sqlite_steps(conn, lambda: list_latest(conn, "b", "p/g099/", "", "", 1000))
    conn.executemany(
        "INSERT INTO versions (bucket, key, version_id, kind, hlc, origin, size, etag,"
        " last_modified_ms, is_latest, manifest) VALUES ('b', ?, 'v', ?, 1, 'n', 1, 'e', 0, 1,"
        " x'')",
        [(f"r/{n:05d}", int(Kind.OBJECT)) for n in range(5000)],
    )
    assert sqlite_steps(conn, lambda: list_latest(conn, "b", "p/g099/", "", "", 1000)) < 1.5 * alone
