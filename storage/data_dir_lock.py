"""The data dir's lock: one node (or one offline tool) at a time. Stdlib only, so that the
supervisor of a multi-worker node takes it before anything heavy is imported."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from storage.errors import StorageError

__all__ = ["DataDirLocked", "lock_data_dir"]


class DataDirLocked(StorageError):
    """Another process (a running node) has this data dir open."""


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on DATA/lakenode.lock while the store is open (and while an
    offline tool such as rebuild-index or restore works on the data dir): returns the
    descriptor, closing it releases the lock."""
    fd = os.open(data_dir / "lakenode.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise DataDirLocked(f"{data_dir} is in use by another lakenode process") from exc
    return fd
