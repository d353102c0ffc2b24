"""The ``snapshot`` job (node/admin/jobs.py contract): a consistent copy of the catalog and
segments into ``out`` (storage/ops/snapshot.py). Not quiet: it runs beside live writers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node.admin.jobs import Job, JobReport, register
from storage.errors import StorageError
from storage.ops import snapshot
from storage.ops.jobstate import Progress
from storage.store import Store


class _LoopProgress:
    """Forwards progress from a worker thread to the event loop's progress sink (which may
    write to the admin channel's connection: only ever from the loop's thread)."""

    def __init__(self, sink: Progress, loop: asyncio.AbstractEventLoop) -> None:
        self._sink, self._loop = sink, loop

    def advance(self, done: int, total: int | None, unit: str) -> None:
        self._loop.call_soon_threadsafe(self._sink.advance, done, total, unit)

    def note(self, message: str) -> None:
        self._loop.call_soon_threadsafe(self._sink.note, message)


async def _run_snapshot(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    out = Path(str(params["out"]))
    if not out.is_absolute():
        raise StorageError(f"snapshot --out must be an absolute path here, not {out}")
    forward = _LoopProgress(progress, asyncio.get_running_loop())
    # In a thread: the node keeps serving while the catalog is backed up and files copied.
    return await asyncio.to_thread(
        snapshot.take_snapshot,
        store.config.data_dir,
        out,
        forward,
        bool(params.get("link", True)),
    )


SNAPSHOT_JOB = Job("snapshot", quiet=False, run=_run_snapshot)
register(SNAPSHOT_JOB)
