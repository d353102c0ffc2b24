"""node/metrics/usage_process.py: a big store's usage comes from a niced child process."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from node.metrics import usage_process
from node.metrics.storage import measure_usage
from storage.ops import usage
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_store


def test_the_child_reports_what_the_store_itself_measures(tmp_path: Path) -> None:
    async def scenario(store: Store) -> tuple[usage.UsageTotals, usage.UsageTotals]:
        await put_object(store, "b", "one", os.urandom(1000))
        await put_object(store, "b", "two", os.urandom(2000))
        await put_object(store, "b", "one", os.urandom(300))  # replaces: 1000 bytes of garbage
        return await usage.store_usage(store), await usage_process.compute_in_child(tmp_path)

    in_store, in_child = run_with_store(scenario, tmp_path)
    assert in_child == in_store
    assert (in_child.objects, in_child.live_bytes) == (2, 2300)
    assert in_child.garbage_bytes >= 1000


def test_only_a_big_store_is_measured_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(store: Store) -> None:
        await put_object(store, "b", "k", os.urandom(5000))

    run_with_store(scenario, tmp_path)
    size = usage_process.store_bytes(tmp_path)
    assert size > 5000  # the segment with its chunk, and meta.db
    assert not usage_process.should_isolate(tmp_path)

    spawned: list[tuple[str, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*argv: str, **kwargs: object) -> asyncio.subprocess.Process:
        spawned.append(argv)
        return await real_exec(*argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    small = asyncio.run(measure_usage(tmp_path))
    assert spawned == []

    monkeypatch.setattr(usage_process, "ISOLATE_FROM_BYTES", size)
    big = asyncio.run(measure_usage(tmp_path))
    assert spawned == [(sys.executable, "-m", "node.metrics.usage_process", str(tmp_path))]
    assert big == small
    assert big.live_bytes == 5000


def test_a_child_that_fails_raises_with_its_last_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(usage_process.UsageProcessFailed, match="exited with 1"):
        asyncio.run(usage_process.compute_in_child(missing))


@pytest.mark.parametrize("out", [b"", b"not json", b'{"segments": 1}', b'{"segments": "x"}'])
def test_output_without_totals_is_an_error(out: bytes) -> None:
    with pytest.raises(usage_process.UsageProcessFailed, match="printed no totals"):
        usage_process.parse_totals(out)
