"""aiosqlite connections that run whole functions on the connection's thread.

Every catalog operation is a plain synchronous function of a ``sqlite3.Connection``. Running
it as one unit on aiosqlite's worker thread costs one thread hop per operation instead of one
per statement, which is what makes a group commit of dozens of writes cheap. aiosqlite has no
public call for this, so :meth:`Database.run` uses its ``_execute``; this is the only place that
does (pinned by the version range in pyproject.toml).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import aiosqlite

from storage.schema import PRAGMAS, migrate

T = TypeVar("T")
P = ParamSpec("P")


class Database:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> Database:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (group commit needs it).
        connection = await aiosqlite.connect(path, isolation_level=None)
        database = cls(connection)
        await database.run(_configure, read_only)
        secure_files(path)
        return database

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(sqlite3_connection, *args)`` on the connection's thread."""
        execute = cast(Callable[..., Any], self._connection._execute)
        raw = self._connection._conn
        return cast(T, await execute(function, raw, *args))

    async def close(self) -> None:
        await self._connection.close()


def secure_files(path: Path) -> None:
    """The catalog holds access-key secrets: owner read/write only (0600), WAL files too."""
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists():
            os.chmod(candidate, 0o600)


def _configure(conn: sqlite3.Connection, read_only: bool) -> None:
    for pragma in PRAGMAS:
        conn.execute(pragma)
    if read_only:
        conn.execute("PRAGMA query_only=ON")
    else:
        migrate(conn)
        # Each mutation of a group commit runs in a savepoint, whose statement journal SQLite
        # spills to a temporary file past 64 KiB: a file created, written and unlinked per
        # batch (25 MB a second at 300k objects under a c=32 fill). The writer's journals stay
        # in memory instead (bounded by the batch); set after migrating, so that a migration's
        # large sorts still spill to disk.
        conn.execute("PRAGMA temp_store=MEMORY")
