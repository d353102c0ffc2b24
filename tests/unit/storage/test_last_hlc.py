"""catalog.last_hlc, read at every open: right with several origins, and a few index seeks
(not a walk of the whole log) at any log length."""

from __future__ import annotations

import sqlite3

from storage.catalog import LAST_LOGGED_HLC, last_hlc, write_meta
from storage.schema import migrate
from tests.unit.storage.test_listing_cost import sqlite_steps


def _log(rows: list[tuple[int, str]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.executemany(
        "INSERT INTO changes (hlc, origin, op, bucket) VALUES (?, ?, 'object.put', 'b')", rows
    )
    return conn


def test_empty_log_is_zero_and_the_meta_value_counts() -> None:
    conn = _log([])
    assert last_hlc(conn) == 0
    write_meta(conn, "hlc_last", "77")
    assert last_hlc(conn) == 77


def test_the_largest_stamp_over_every_origin() -> None:
    rows = [(hlc, origin) for origin in ("a", "m", "z") for hlc in range(1, 200)]
    rows += [(5_000, "m"), (4_000, "z")]
    conn = _log(rows)
    assert last_hlc(conn) == 5_000
    write_meta(conn, "hlc_last", "6000")
    assert last_hlc(conn) == 6_000


def test_cost_does_not_grow_with_the_log() -> None:
    short = _log([(n, f"site-{n % 3}") for n in range(100)])
    long = _log([(n, f"site-{n % 3}") for n in range(30_000)])
    assert last_hlc(long) == 29_999
    assert sqlite_steps(long, lambda: last_hlc(long)) < 2 * sqlite_steps(
        short, lambda: last_hlc(short)
    )
    plan = " ".join(str(row) for row in long.execute("EXPLAIN QUERY PLAN " + LAST_LOGGED_HLC))
    assert "SCAN changes" not in plan
