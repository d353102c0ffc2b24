"""The running node's tombstone GC: storage/sync/tombstone_gc.py every ``--repl-gc-interval``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from storage.hlc import wall_clock_ms
from storage.sync.site import SyncSite
from storage.sync.tombstone_gc import PurgeLimits

log = logging.getLogger("lakenode.repl.gc")


@dataclass(frozen=True)
class GcSettings:
    interval_ms: int
    window_ms: int
    conflict_retention_ms: int


async def purge_once(site: SyncSite, settings: GcSettings) -> None:
    """Configured peers not reached yet hold back the horizon by themselves
    (storage/sync/retention.py reads the --peer list the node records at start)."""
    limits = PurgeLimits(
        now_ms=wall_clock_ms(),
        window_ms=settings.window_ms,
        conflict_retention_ms=settings.conflict_retention_ms,
    )
    report = await site.purge_tombstones(limits)
    if report.purged:
        log.info(
            "tombstone GC: %d tombstones, %d version tombstones, %d documents, %d tag sets,"
            " %d conflicts, %d log rows purged (log pruned through seq %d)",
            report.tombstones,
            report.version_tombstones,
            report.documents,
            report.tag_sets,
            report.conflicts,
            report.log_rows,
            report.log_pruned_through,
        )


async def purge_forever(
    site: SyncSite,
    settings: GcSettings,
    paused: Callable[[], bool] = lambda: False,
) -> None:
    """Purge every interval, except in maintenance mode (nothing writes then)."""
    while True:
        await asyncio.sleep(settings.interval_ms / 1000)
        if paused():
            continue
        try:
            await purge_once(site, settings)
        except Exception:
            log.exception("tombstone GC failed; retrying in %d ms", settings.interval_ms)
