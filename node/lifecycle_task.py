"""The running node's lifecycle worker: a lifecycle pass every ``--lifecycle-interval``.

The first pass runs one interval after the start, except that a pass a crash or a stop left
unfinished resumes at once (its cursor is in ``meta``). Nothing runs in maintenance mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from storage.ops.lifecycle import PassSettings, run_pass
from storage.ops.lifecycle_actions import UpdateState, read_state
from storage.store import Store

log = logging.getLogger("lakenode.lifecycle")


@dataclass(frozen=True)
class LifecycleSettings:
    interval_ms: int
    day_ms: int


async def pass_once(store: Store, settings: LifecycleSettings) -> None:
    report = await run_pass(store, PassSettings(day_ms=settings.day_ms))
    if report.actions or report.skipped or not report.complete:
        log.info(
            "lifecycle pass: %d actions, %d no longer due, %d keys%s",
            report.actions,
            report.skipped,
            report.keys,
            "" if report.complete else " (bound reached: the next pass continues)",
        )


async def lifecycle_forever(
    store: Store, settings: LifecycleSettings, paused: Callable[[], bool] = lambda: False
) -> None:
    """A pass every interval (at once if one was left unfinished); failures are logged and
    counted in the ``lifecycle`` row by the pass, and the next interval tries again."""
    unfinished = (await store.query(read_state)).get("cursor") is not None
    while True:
        if not unfinished:
            await asyncio.sleep(settings.interval_ms / 1000)
        unfinished = False
        if paused():
            continue
        try:
            await pass_once(store, settings)
        except Exception:
            log.exception("lifecycle pass failed; retrying in %d ms", settings.interval_ms)
            await _count_failure(store)


async def _count_failure(store: Store) -> None:
    try:
        await store.commit(UpdateState((), add_errors=1))
    except Exception:
        log.exception("counting the failed lifecycle pass failed")
