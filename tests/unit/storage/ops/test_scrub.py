"""scrub on real data dirs: a flipped byte is found, attributed, counted and repaired.

Method: write objects, close the store, flip one byte inside one chunk in its segment file,
then scrub (the CLI in process, or the storage API for repair). Repair fetches the chunk
from a second real store that holds the same bytes (what a peer does over HTTP: see
tests/integration/test_ops_repair.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from node.admin.jobs import NoProgress
from node.cli.main import main
from storage.ops import scrub
from storage.segments import segment_path
from storage.store import Store, StoreConfig
from tests.integration.test_corruption import flip
from tests.unit.storage.stores import put_object, read_all, run_with_store, site_of

SEGMENT = 64 * 1024
CHUNK = 16 * 1024


def write(data_dir: Path, objects: dict[str, bytes], bucket: str | None = "b") -> dict[str, Any]:
    async def body(store: Store) -> dict[str, Any]:
        return {key: await put_object(store, "b", key, data) for key, data in objects.items()}

    return run_with_store(body, data_dir, CHUNK, bucket, SEGMENT)


def scrub_cli(data_dir: Path, capsys: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["scrub", "--data-dir", str(data_dir), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def job_row(data_dir: Path) -> dict[str, Any]:
    conn = sqlite3.connect(data_dir / "meta.db")
    (raw,) = conn.execute("SELECT value FROM meta WHERE name = 'job:scrub'").fetchone()
    conn.close()
    return dict(json.loads(raw))


def test_a_flipped_byte_is_reported_for_exactly_its_object(tmp_path: Path, capsys: Any) -> None:
    objects = {f"k{i}": os.urandom(20_000 + i) for i in range(6)}
    manifests = write(tmp_path, objects)
    damaged = manifests["k3"].chunks[1]
    flip(segment_path(tmp_path / "segments", damaged.segment_id), damaged.offset + 100)
    code, report = scrub_cli(tmp_path, capsys)
    assert code == 1
    assert report["corrupt_objects"] == ["b/k3 version null"]
    assert [c["blake3"] for c in report["corrupt_chunks"]] == [damaged.blake3.hex()]
    row = job_row(tmp_path)
    assert (row["corrupt_chunks"], row["corrupt_objects"], row["done_ratio"]) == (1, 1, 1.0)
    assert row["finished_ms"] is not None and row["checked_bytes"] > 120_000
    assert main(["scrub", "--data-dir", str(tmp_path)]) == 1
    assert "corrupt: b/k3 version null" in capsys.readouterr().out


def test_damage_to_garbage_is_reported_apart_and_is_not_corruption(
    tmp_path: Path, capsys: Any
) -> None:
    first = write(tmp_path, {"k": os.urandom(20_000)})["k"]
    write(tmp_path, {"k": os.urandom(20_000)}, bucket=None)  # the first one is garbage now
    flip(segment_path(tmp_path / "segments", first.chunks[0].segment_id), first.chunks[0].offset)
    code, report = scrub_cli(tmp_path, capsys)
    assert code == 0
    assert report["corrupt_chunks"] == [] and len(report["unreferenced_damage"]) == 1
    assert job_row(tmp_path)["corrupt_chunks"] == 0


def test_repair_fetches_the_chunk_again_and_the_next_scrub_is_clean(tmp_path: Path) -> None:
    objects = {"k": os.urandom(50_000), "other": os.urandom(10_000)}
    damaged = write(tmp_path / "a", objects)["k"].chunks[2]
    write(tmp_path / "peer", objects)  # same bytes, same chunking: same hashes
    flip(segment_path(tmp_path / "a" / "segments", damaged.segment_id), damaged.offset + 7)

    async def body() -> None:
        store = await Store.open(StoreConfig(tmp_path / "a"))
        peer = await Store.open(StoreConfig(tmp_path / "peer"))
        try:
            fetch = (await site_of(peer)).read_chunk_by_hash
            result = await scrub.scrub(store, None, NoProgress(), fetch=fetch)
            assert [c.blake3 for c in result.repaired] == [damaged.blake3]
            assert result.unrepaired == []
            assert await read_all(store, await store.head_object("b", "k")) == objects["k"]
            again = await scrub.scrub(store, None, NoProgress())
            assert again.corrupt == [] and len(again.unreferenced_damage()) == 1
        finally:
            await store.close()
            await peer.close()

    asyncio.run(body())
    assert job_row(tmp_path / "a")["corrupt_chunks"] == 0


def test_repair_without_a_good_copy_leaves_the_corruption_reported(tmp_path: Path) -> None:
    damaged = write(tmp_path, {"k": os.urandom(30_000)})["k"].chunks[0]
    flip(segment_path(tmp_path / "segments", damaged.segment_id), damaged.offset)

    async def nowhere(_digest: bytes) -> bytes | None:
        return None

    async def body(store: Store) -> None:
        result = await scrub.scrub(store, None, NoProgress(), fetch=nowhere)
        assert result.repaired == [] and len(result.unrepaired) == 1
        assert result.repair_failures == {damaged.blake3.hex(): "no peer holds it"}

    run_with_store(body, tmp_path, bucket=None)


def test_the_rate_limit_paces_reads() -> None:
    async def body() -> float:
        pace = scrub.Pace(10_000_000)  # 10 MB/s
        started = time.monotonic()
        for _ in range(4):
            await pace.account(500_000)
        return time.monotonic() - started

    assert asyncio.run(body()) >= 0.19
    assert scrub.Pace(10_000_000).step_bytes == 2_500_000
