"""The injected clock (storage/clock.py): a store opened with a ManualClock reads no other time."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.clock import SYSTEM_CLOCK, ManualClock, set_wall_clock_offset_ms
from storage.completions import RETENTION_MS, CompletedUpload
from storage.errors import NoSuchUpload
from storage.hlc import LOGICAL_BITS, LOGICAL_MAX, wall_clock_ms
from storage.ops import mpu_gc
from storage.store import Store, StoreConfig
from tests.unit.storage.stores import put_object, put_part

START_MS = 1_800_000_000_000
DAY_S = 24 * 3600


def run_with_manual_clock(
    test: Callable[[Store, ManualClock], Awaitable[None]], data_dir: Path
) -> None:
    clock = ManualClock(START_MS)

    async def main() -> None:
        store = await Store.open(StoreConfig(data_dir, time_source=clock))
        try:
            await store.create_bucket("b", "owner")
            await test(store, clock)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(START_MS, monotonic=5.0)
    assert (clock.wall_ms(), clock.wall_s(), clock.monotonic()) == (START_MS, START_MS / 1000, 5.0)
    clock.advance(1.5)
    assert (clock.wall_ms(), clock.monotonic()) == (START_MS + 1500, 6.5)
    clock.set_wall_ms(START_MS - 60_000)  # stepped back (NTP): monotonic time does not follow
    assert (clock.wall_ms(), clock.monotonic()) == (START_MS - 60_000, 6.5)
    with pytest.raises(AssertionError):
        clock.advance(-1)


def test_the_test_offset_shifts_the_system_wall_clock_only() -> None:
    before = SYSTEM_CLOCK.wall_ms()
    set_wall_clock_offset_ms(3_600_000)
    try:
        assert SYSTEM_CLOCK.wall_ms() - before >= 3_600_000
        assert wall_clock_ms() - before >= 3_600_000
        assert SYSTEM_CLOCK.wall_s() - time.time() > 3599
        assert abs(SYSTEM_CLOCK.monotonic() - time.monotonic()) < 60
    finally:
        set_wall_clock_offset_ms(0)
    assert SYSTEM_CLOCK.wall_ms() - before < 3_600_000


def test_the_store_stamps_from_its_clock_and_the_hlc_never_goes_back(tmp_path: Path) -> None:
    async def body(store: Store, clock: ManualClock) -> None:
        first = await put_object(store, "b", "k", b"one")
        second = await put_object(store, "b", "k", b"two")  # same millisecond: logical + 1
        assert first.hlc >> LOGICAL_BITS == START_MS  # (the bucket took logical 0)
        assert second.hlc == first.hlc + 1
        clock.set_wall_ms(START_MS - 10_000)  # the clock steps back: stamps still increase
        third = await put_object(store, "b", "k", b"three")
        assert third.hlc == second.hlc + 1
        clock.advance(20)
        fourth = await put_object(store, "b", "k", b"four")
        assert (fourth.hlc >> LOGICAL_BITS, fourth.hlc & LOGICAL_MAX) == (START_MS + 10_000, 0)

    run_with_manual_clock(body, tmp_path)


def test_uploads_turn_stale_as_the_clock_advances(tmp_path: Path) -> None:
    async def body(store: Store, clock: ManualClock) -> None:
        upload = await put_part(store, "b", "k", b"part")
        assert upload.initiated_ms == START_MS
        week_ms = 7 * DAY_S * 1000
        assert await mpu_gc.stale_uploads(store, week_ms) == []
        clock.advance(7 * DAY_S - 1)
        assert await mpu_gc.stale_uploads(store, week_ms) == []
        clock.advance(1)
        stale = await mpu_gc.stale_uploads(store, week_ms)
        assert [s.upload.upload_id for s in stale] == [upload.upload_id]

    run_with_manual_clock(body, tmp_path)


def test_a_completion_is_remembered_for_the_retention_window(tmp_path: Path) -> None:
    etag = hashlib.md5(b"part").hexdigest()

    async def body(store: Store, clock: ManualClock) -> None:
        first = await put_part(store, "b", "first", b"part")
        await store.multipart.complete_upload(first, [(1, etag)])
        clock.advance(RETENTION_MS / 1000 - 1)
        again = await store.multipart.complete_upload(first, [(1, etag)])
        assert isinstance(again, CompletedUpload)  # within the window: the first answer
        clock.advance(2)
        other = await put_part(store, "b", "other", b"part")
        await store.multipart.complete_upload(other, [(1, etag)])  # prunes records past retention
        with pytest.raises(NoSuchUpload):
            await store.multipart.complete_upload(first, [(1, etag)])

    run_with_manual_clock(body, tmp_path)
