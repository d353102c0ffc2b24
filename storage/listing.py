"""Listings: current objects (ListObjects V1/V2) and all versions (ListObjectVersions).

Both walk the catalog in S3 order (UTF-8 bytes of the key, which is SQLite's BINARY order),
fold keys that contain the delimiter after the prefix into common prefixes, and seek past a
whole common prefix at once instead of reading every key under it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, NamedTuple

from storage.catalog import get_bucket
from storage.manifest import Kind


class ListEntry(NamedTuple):
    """One current object of a listing (a tuple: a page builds a thousand of them)."""

    key: str
    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True)
class ListPage:
    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: the marker that continues this listing.
    last_returned: str | None


@dataclass(frozen=True)
class VersionEntry:
    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True)
class VersionPage:
    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_marker: str | None


def after(text: str) -> str:
    """The smallest string greater than every string that starts with ``text``.

    UTF-8 byte order equals code point order, so bumping the last code point gives the
    tight upper bound of the prefix range.
    """
    return text[:-1] + chr(ord(text[-1]) + 1)


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    position = key.find(delimiter, len(prefix))
    if position < 0:
        return None
    return key[: position + len(delimiter)]


def _rows(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...]
) -> Generator[Any, None, None]:
    """The query's rows stepped one at a time, the statement closed when the walk stops.

    A delimiter walk reads one row per common prefix and then seeks past the prefix: with
    ``fetchall`` (or a LIMIT of a page) every seek read up to a whole page of rows only to use
    the first, so a listing of 1,000 sub-prefixes read up to a million rows.
    """
    cursor = conn.execute(sql, params)
    try:
        yield from cursor
    finally:
        cursor.close()


def _lower_bound(after_key: str, floor: str) -> tuple[str, str]:
    """One lower bound on key: after ``after_key`` (exclusive) and from ``floor`` on.

    Given both as SQL terms, SQLite seeks the index on one of them and filters on the other:
    seeking on ``key > after_key`` while ``floor`` is far ahead re-read every key between
    them, once per common prefix.
    """
    return ("key >= ?", floor) if floor > after_key else ("key > ?", after_key)


def _upper_bound(prefix: str) -> tuple[str, tuple[str, ...]]:
    """SQL and parameter bounding the scan to keys that start with ``prefix``."""
    return (" AND key < ?", (after(prefix),)) if prefix else ("", ())


def list_latest(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    marker: str,
    max_keys: int,
) -> ListPage:
    """One page of current objects after ``marker``, folding keys into common prefixes."""
    get_bucket(conn, bucket)
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    last: str | None = None
    # Seek position: rows with key > after_key (exclusive) and key >= floor (inclusive).
    after_key, floor = marker, prefix
    bound, bound_params = _upper_bound(prefix)
    while True:
        lower, start = _lower_bound(after_key, floor)
        scan = _rows(
            conn,
            "SELECT key, size, etag, last_modified_ms FROM versions INDEXED BY versions_latest"
            f" WHERE bucket = ? AND is_latest = 1 AND {lower}{bound} AND kind = ?"
            " ORDER BY key",
            (bucket, start, *bound_params, int(Kind.OBJECT)),
        )
        with closing(scan):
            for row in scan:
                key = row[0]
                if not key.startswith(prefix):
                    return ListPage(entries, prefixes, False, last)
                group = common_prefix(key, prefix, delimiter)
                if group is not None and group == marker:
                    # This group ended the previous page (it is the marker): skip all of it.
                    floor = after(group)
                    break
                if len(entries) + len(prefixes) == max_keys:
                    return ListPage(entries, prefixes, True, last)
                if group is None:
                    entries.append(ListEntry._make(row))
                    last = key
                    after_key = key
                    continue
                prefixes.append(group)
                last = group
                floor = after(group)
                break
            else:
                return ListPage(entries, prefixes, False, last)


_VERSION_COLUMNS = "key, version_id, is_latest, kind, size, etag, last_modified_ms, hlc"


def list_versions(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_marker: str,
    max_keys: int,
) -> VersionPage:
    """One page of every version and delete marker, by key then newest first.

    The walk is keyset-paginated on (key, hlc): a position is "after this key" or "after
    this version of this key", so a page boundary inside a key's versions loses nothing.
    """
    get_bucket(conn, bucket)
    entries: list[VersionEntry] = []
    prefixes: list[str] = []
    after_key, after_hlc, floor = (
        key_marker,
        _marker_hlc(conn, bucket, key_marker, version_marker),
        prefix,
    )
    next_key: str | None = None
    next_version: str | None = None
    while True:
        rows = _version_rows(conn, bucket, after_key, after_hlc, floor, prefix)
        with closing(rows):
            for key, version_id, is_latest, kind, size, etag, modified_ms, hlc in rows:
                if not key.startswith(prefix):
                    return VersionPage(entries, prefixes, False, None, None)
                group = common_prefix(key, prefix, delimiter)
                if group is not None and group == key_marker:
                    after_key, after_hlc, floor = key, None, after(group)
                    break
                if len(entries) + len(prefixes) == max_keys:
                    return VersionPage(entries, prefixes, True, next_key, next_version)
                if group is not None:
                    prefixes.append(group)
                    next_key, next_version = group, None
                    after_key, after_hlc, floor = key, None, after(group)
                    break
                entries.append(
                    VersionEntry(
                        key,
                        version_id,
                        bool(is_latest),
                        kind == Kind.DELETE_MARKER,
                        size,
                        etag,
                        modified_ms,
                    )
                )
                next_key, next_version = key, version_id
                after_key, after_hlc = key, hlc
            else:
                return VersionPage(entries, prefixes, False, None, None)


def _marker_hlc(
    conn: sqlite3.Connection, bucket: str, key_marker: str, version_marker: str
) -> int | None:
    if not (key_marker and version_marker):
        return None
    row = conn.execute(
        "SELECT hlc FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key_marker, version_marker),
    ).fetchone()
    return None if row is None else int(row[0])


def _version_rows(
    conn: sqlite3.Connection,
    bucket: str,
    after_key: str,
    after_hlc: int | None,
    floor: str,
    prefix: str,
) -> Generator[tuple[str, str, int, int, int, str, int, int], None, None]:
    params: tuple[str | int, ...]
    if after_hlc is None:
        lower, start = _lower_bound(after_key, floor)
        where, params = lower, (start,)
    else:
        where = "(key > ? OR (key = ? AND hlc < ?)) AND key >= ?"
        params = (after_key, after_key, after_hlc, floor)
    bound, bound_params = _upper_bound(prefix)
    return _rows(
        conn,
        f"SELECT {_VERSION_COLUMNS} FROM versions WHERE bucket = ? AND {where}"
        f"{bound} AND kind != ? ORDER BY key, hlc DESC",
        (bucket, *params, *bound_params, int(Kind.TOMBSTONE)),
    )
