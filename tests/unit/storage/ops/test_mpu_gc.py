"""mpu-gc: stale multipart uploads are listed, aborted, and their parts' bytes reclaimed.

Method: two uploads with a part each; one is backdated by eight days in the catalog (as if
started then). ``lakenode mpu-gc plan|run --older-than 7d`` (in process) must pick exactly
that one; the other keeps its part; ``gc run`` then returns the aborted part's bytes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from node.cli.ops import parse_age_ms
from storage.store import Store
from tests.unit.storage.stores import put_part, read_all, run_with_store

PART = 200_000
DAY_MS = 86_400_000


def cli(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_stale_uploads_are_aborted_and_fresh_ones_kept(tmp_path: Path, capsys: Any) -> None:
    async def start(store: Store) -> dict[str, bytes]:
        parts = {}
        for key in ("stale", "fresh"):
            data = os.urandom(PART)
            parts[(await put_part(store, "b", key, data)).upload_id] = data
        return parts

    parts = run_with_store(start, tmp_path, chunk_bytes=64 * 1024, segment_bytes_max=128 * 1024)
    conn = sqlite3.connect(tmp_path / "meta.db")
    conn.execute(
        "UPDATE uploads SET initiated_ms = initiated_ms - ? WHERE key = 'stale'", (8 * DAY_MS,)
    )
    (stale_id,) = conn.execute("SELECT upload_id FROM uploads WHERE key = 'stale'").fetchone()
    conn.commit()
    conn.close()
    data_dir = ["--data-dir", str(tmp_path)]

    code, plan = cli(capsys, "mpu-gc", "plan", "--older-than", "7d", *data_dir)
    assert code == 0 and [u["upload_id"] for u in plan["uploads"]] == [stale_id]
    assert plan["uploads"][0]["part_bytes"] == PART and plan["aborted"] == []
    _code, before = cli(capsys, "gc", "plan", "--threshold", "1", *data_dir)
    code, run = cli(capsys, "mpu-gc", "run", "--older-than", "7d", *data_dir)
    assert code == 0 and run["aborted"] == [stale_id]
    code, again = cli(capsys, "mpu-gc", "plan", "--older-than", "7d", *data_dir)
    assert again["uploads"] == []
    code, collected = cli(capsys, "gc", "run", "--force", "--threshold", "1", *data_dir)
    assert code == 0
    assert collected["reclaimed_bytes"] >= PART
    assert collected["totals"]["live_bytes"] < before["totals"]["live_bytes"]

    async def check(store: Store) -> None:
        (fresh,) = [uid for uid in parts if uid != stale_id]
        upload = await store.multipart.get_upload("b", "fresh", fresh)
        listed, _more = await store.multipart.list_parts(upload, 0, 10)
        assert await read_all(store, listed[0].manifest) == parts[fresh]
        page = await store.multipart.list_uploads("b", "", "", "", "", 100)
        assert [u.upload_id for u in page.uploads] == [fresh]

    run_with_store(check, tmp_path, bucket=None)


def test_ages_parse_in_days_hours_minutes_seconds() -> None:
    assert [parse_age_ms(t) for t in ("7d", "12h", "30m", "0s")] == [
        7 * DAY_MS,
        12 * 3_600_000,
        30 * 60_000,
        0,
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["mpu-gc", "plan", "--older-than", "7 weeks"])
    assert exit_info.value.code == 2
