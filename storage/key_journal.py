"""The access-key journal, ``DATA/journal/keys.log``: access keys survive the loss of meta.db.

``lakenode keys`` changes keys with plain SQLite transactions, beside a running node or not,
outside the group commit, so keys cannot ride in the segment journal. Instead every change
appends one line here, fsynced **before** its transaction commits (while it holds SQLite's
write lock, so lines are in commit order): the full state of the key after the change, or
its deletion. rebuild-index replays the file; the last line for a key wins.

A line is ``<BLAKE3 hex of the JSON> <JSON>``; a line that fails its hash is reported and
skipped (a torn last line after a crash is the expected case: its transaction never
committed). The file holds secret keys in clear, like ``meta.db``: the directory is 0700
and the file 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import blake3

from storage.segments import fsync_directory

JOURNAL_DIR: Final = "journal"
FILE_NAME: Final = "keys.log"
PUT: Final = "put"
DELETE: Final = "delete"
KEY_COLUMNS: Final = (
    "access_key", "secret_key", "status", "read_only", "buckets", "policy", "replication",
    "created_ms",
)  # fmt: skip


def journal_path(data_dir: Path) -> Path:
    return data_dir / JOURNAL_DIR / FILE_NAME


def data_dir_of(conn: sqlite3.Connection) -> Path | None:
    """The data dir of a connection to ``DATA/meta.db`` (None for an in-memory database)."""
    for _seq, name, file in conn.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent
    return None


def _line(entry: dict[str, Any]) -> bytes:
    text = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return f"{blake3.blake3(text.encode()).hexdigest()} {text}\n".encode()


def key_row(conn: sqlite3.Connection, access_key: str) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {', '.join(KEY_COLUMNS)} FROM access_keys WHERE access_key = ?", (access_key,)
    ).fetchone()
    return None if row is None else dict(zip(KEY_COLUMNS, row, strict=True))


def _open_for_append(data_dir: Path) -> int:
    directory = data_dir / JOURNAL_DIR
    if not directory.exists():
        directory.mkdir(mode=0o700, exist_ok=True)
        fsync_directory(data_dir)
    os.chmod(directory, 0o700)
    path = directory / FILE_NAME
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    if created:
        fsync_directory(directory)
    return fd


def record_key_change(conn: sqlite3.Connection, access_key: str) -> None:
    """Journal a key's state as it is in the open transaction (its deletion if it is gone);
    call before COMMIT. Keys of an in-memory catalog have no data dir and no journal."""
    data_dir = data_dir_of(conn)
    if data_dir is None:
        return
    row = key_row(conn, access_key)
    entry = {"op": PUT, "key": row} if row is not None else {"op": DELETE, "key": access_key}
    fd = _open_for_append(data_dir)
    try:
        os.write(fd, _line(entry))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_baseline(conn: sqlite3.Connection, data_dir: Path) -> int:
    """Replace the journal with the current keys (after a restore, or for keys created
    before the journal existed). Run inside a write transaction, so no key changes
    meanwhile; returns how many keys it holds."""
    rows = conn.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM access_keys").fetchall()
    fd = _open_for_append(data_dir)
    os.close(fd)
    path = journal_path(data_dir)
    temporary = path.with_suffix(".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        for row in rows:
            file.write(_line({"op": PUT, "key": dict(zip(KEY_COLUMNS, row, strict=True))}))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
    return len(rows)


def ensure_baseline(conn: sqlite3.Connection, data_dir: Path) -> None:
    """Start the journal with the existing keys if it does not exist yet (a data dir from
    before it existed): afterwards every change is journaled."""
    if journal_path(data_dir).exists():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not journal_path(data_dir).exists():
            write_baseline(conn, data_dir)
    finally:
        conn.execute("COMMIT")


@dataclass
class KeyReplay:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: int = 0
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers skipped


def replay(path: Path) -> KeyReplay:
    """The keys the journal ends with (the last line per key wins)."""
    result = KeyReplay()
    if not path.exists():
        return result
    for number, entry in _entries(path, result):
        if entry.get("op") == PUT and isinstance(entry.get("key"), dict):
            row = entry["key"]
            if set(row) == set(KEY_COLUMNS) and isinstance(row["access_key"], str):
                result.keys[row["access_key"]] = row
                continue
        elif entry.get("op") == DELETE and isinstance(entry.get("key"), str):
            result.keys.pop(entry["key"], None)
            continue
        result.bad_lines.append(number)
    return result


def _entries(path: Path, result: KeyReplay) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            result.lines += 1
            digest, _space, text = raw.rstrip(b"\n").partition(b" ")
            entry: object = None
            if blake3.blake3(text).hexdigest().encode() == digest:
                with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError):
                    entry = json.loads(text)
            if isinstance(entry, dict):
                yield number, entry
            else:
                result.bad_lines.append(number)
