"""Listings: current objects (ListObjects V1/V2) and all versions (ListObjectVersions).

Both walk the catalog in S3 order (UTF-8 bytes of the key, which is SQLite's BINARY order),
fold keys that contain the delimiter after the prefix into common prefixes, and seek past a
whole common prefix at once instead of reading every key under it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import NamedTuple

from storage.catalog import get_bucket
from storage.manifest import Kind

PAGE_ROWS = 1000


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
    while True:
        # One row past what the page still needs says whether it is truncated; fetching a
        # full PAGE_ROWS instead would read a second thousand rows to look at one.
        wanted = min(max_keys - len(entries) - len(prefixes), PAGE_ROWS) + 1
        rows = conn.execute(
            "SELECT key, size, etag, last_modified_ms FROM versions INDEXED BY versions_latest"
            " WHERE bucket = ? AND is_latest = 1 AND key > ? AND key >= ? AND kind = ?"
            " ORDER BY key LIMIT ?",
            (bucket, after_key, floor, int(Kind.OBJECT), wanted),
        ).fetchall()
        if not rows:
            return ListPage(entries, prefixes, False, last)
        for row in rows:
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
            if len(rows) < wanted:  # the walk reached the end of the bucket: no more query
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
        rows = _version_rows(conn, bucket, after_key, after_hlc, floor)
        if not rows:
            return VersionPage(entries, prefixes, False, None, None)
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
    conn: sqlite3.Connection, bucket: str, after_key: str, after_hlc: int | None, floor: str
) -> list[tuple[str, str, int, int, int, str, int, int]]:
    params: tuple[str | int, ...]
    if after_hlc is None:
        where, params = "key > ?", (after_key,)
    else:
        where, params = "(key > ? OR (key = ? AND hlc < ?))", (after_key, after_key, after_hlc)
    rows: list[tuple[str, str, int, int, int, str, int, int]] = conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM versions WHERE bucket = ? AND {where} AND key >= ?"
        " AND kind != ? ORDER BY key, hlc DESC LIMIT ?",
        (bucket, *params, floor, int(Kind.TOMBSTONE), PAGE_ROWS),
    ).fetchall()
    return rows
