"""``lakenode serve``'s log file (``--log-file``, default ``DATA/logs/lakenode.log``).

The same lines as on stderr, kept on disk and rotated (10 MiB, 5 old files) so that
``lakenode support-bundle`` can include the recent ones. With several workers every process
appends to the one file, and only the supervisor rotates it (:func:`rotate_if_due`); a
worker reopens the file when it has been moved, so no line goes on into a rotated file and no
two processes rotate the same file twice. The directory is created 0700: log
lines name buckets and keys. The access log (one JSON line per request on stdout) is not
written here: it would push the few lines that explain a problem out of the files.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler, WatchedFileHandler
from pathlib import Path
from typing import Final

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE_BYTES: Final = 10 << 20
LOG_FILE_BACKUPS: Final = 5


def add_log_file(path: Path, rotate: bool = True) -> logging.FileHandler:
    """Send the root logger's records to ``path`` too; OSError if it cannot be opened.
    ``rotate``: this process rotates the file (the only process, or the supervisor); a worker
    passes False and follows the supervisor's rotations."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler: logging.FileHandler
    if rotate:
        handler = RotatingFileHandler(
            path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    else:
        handler = WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def rotate_if_due(handler: RotatingFileHandler, max_bytes: int = LOG_FILE_BYTES) -> None:
    """For the supervisor: rotate once the file that every worker appends to is full (its own
    handler only looks when the supervisor itself logs)."""
    try:
        size = os.stat(handler.baseFilename).st_size
    except FileNotFoundError:
        return
    if size >= max_bytes:
        handler.doRollover()


def log_files(path: Path) -> list[Path]:
    """The log file and its rotated predecessors that exist, newest first."""
    rotated = (path.with_name(f"{path.name}.{n}") for n in range(1, 1 + LOG_FILE_BACKUPS))
    candidates = [path, *rotated]
    return [candidate for candidate in candidates if candidate.is_file()]
