"""fsck on real data dirs: clean stays clean, each kind of damage gives its finding.

Method: write a store with overwrites, deletes, versions, a deleted bucket and a multipart
upload in progress (superseded manifests everywhere, none of them a finding), close it,
damage one thing (a segment file, a catalog row) by hand, and run ``lakenode fsck`` in
process: exit code 1 and the expected finding, exit 0 on the undamaged store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from storage.manifest import Manifest
from storage.segments import segment_path
from storage.store import Store
from tests.unit.storage.stores import put_object, put_part, run_with_store

SEGMENT = 64 * 1024
CHUNK = 16 * 1024


@pytest.fixture
def written(tmp_path: Path) -> dict[str, Manifest]:
    """A data dir with history; the manifests of a few objects to damage."""

    async def body(store: Store) -> dict[str, Manifest]:
        kept = {}
        for round_ in range(3):
            for key in ("a", "b", "c"):
                kept[key] = await put_object(store, "b", key, os.urandom(20_000 + round_))
        await store.delete_object("b", "c")
        await store.create_bucket("v", "owner")
        await store.set_versioning("v", "Enabled")
        first = await put_object(store, "v", "k", os.urandom(30_000))
        kept["v"] = await put_object(store, "v", "k", os.urandom(30_000))
        await store.delete_object("v", "k", first.version_id)  # deleted for good
        await store.create_bucket("gone", "owner")
        await put_object(store, "gone", "k", b"short-lived")
        await store.delete_object("gone", "k")
        await store.delete_bucket("gone")
        await put_part(store, "b", "mpu", os.urandom(25_000))
        kept["last"] = await put_object(store, "b", "last", b"in the last segment")
        return kept

    return run_with_store(body, tmp_path, chunk_bytes=CHUNK, segment_bytes_max=SEGMENT)


def fsck(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["fsck", "--data-dir", str(data_dir), "--json"])
    return code, json.loads(capsys.readouterr().out)


def codes(report: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["code"], set()).add(finding["subject"])
    return found


def catalog(data_dir: Path, *statements: str) -> None:
    conn = sqlite3.connect(data_dir / "meta.db")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_a_store_with_history_is_clean(
    tmp_path: Path, written: dict[str, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = fsck(tmp_path, capsys)
    assert (code, report["clean"], report["findings"]) == (0, True, [])
    assert report["checked"]["versions"] >= 5 and report["checked"]["parts"] == 1
    assert main(["fsck", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("fsck: clean")


def test_a_deleted_segment_file_is_found(
    tmp_path: Path, written: dict[str, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    segment = written["a"].chunks[0].segment_id
    segment_path(tmp_path / "segments", segment).unlink()
    code, report = fsck(tmp_path, capsys)
    found = codes(report)
    assert code == 1
    assert "b/a version null" in found["chunk-segment-missing"]
    assert found["segment-missing"] == {f"segment {segment}"}


def test_a_truncated_segment_file_is_found(
    tmp_path: Path, written: dict[str, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    chunk = written["b"].chunks[-1]
    os.truncate(segment_path(tmp_path / "segments", chunk.segment_id), chunk.offset + 10)
    code, report = fsck(tmp_path, capsys)
    found = codes(report)
    assert code == 1
    assert "b/b version null" in found["chunk-beyond-file-end"]
    assert found["segment-truncated"] == {f"segment {chunk.segment_id}"}
    assert main(["fsck", "--data-dir", str(tmp_path)]) == 1
    assert "chunk-beyond-file-end" in capsys.readouterr().out


Damage = Callable[[dict[str, Manifest]], list[str]]
Findings = Callable[[dict[str, Manifest]], dict[str, set[str] | None]]


def _index_digest(written: dict[str, Manifest]) -> str:
    return written["b"].chunks[0].blake3.hex()


# case -> (statements run on the closed catalog, the findings fsck must give: no more)
CATALOG_DAMAGE: dict[str, tuple[Damage, Findings]] = {
    "version row deleted behind the store: its manifest is an orphan": (
        lambda w: ["DELETE FROM versions WHERE bucket = 'b' AND key = 'a'"],
        lambda w: {"manifest-orphan": {"b/a"}},
    ),
    "undecodable manifest blob": (
        lambda w: ["UPDATE versions SET manifest = x'4c4b4d46' WHERE key = 'last'"],
        lambda w: {"version-manifest-undecodable": {"b/last version null"}},
    ),
    "chunk index entry pointing into a record header": (
        lambda w: [
            f"UPDATE chunk_index SET offset = offset - 8 WHERE blake3 = x'{_index_digest(w)}'"
        ],
        lambda w: {"chunk-not-at-record": {f"chunk index {_index_digest(w)}"}},
    ),
    "acknowledged cursor past the end of the log (a pull cursor is the peer's log: fine)": (
        lambda w: [
            "INSERT INTO peer_cursors VALUES ('peer-x', 'acked', 1000000, 0)",
            "INSERT INTO peer_cursors VALUES ('peer-x', 'pull', 1000000, 0)",
        ],
        lambda w: {"cursor-beyond-log": {"cursor peer-x acked"}},
    ),
    "a chunk a peer still needs (deleted object's change) missing from the index": (
        lambda w: [
            "INSERT INTO peer_cursors VALUES ('peer-x', 'acked', 0, 0)",  # owed everything
            f"DELETE FROM chunk_index WHERE blake3 = x'{w['c'].chunks[0].blake3.hex()}'",
        ],
        lambda w: {"change-chunk-missing": None},  # subject: "change SEQ", whatever SEQ is
    ),
}


@pytest.mark.parametrize("case", sorted(CATALOG_DAMAGE))
def test_catalog_damage_gives_its_finding(
    case: str, tmp_path: Path, written: dict[str, Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    damage, findings = CATALOG_DAMAGE[case]
    catalog(tmp_path, *damage(written))
    code, report = fsck(tmp_path, capsys)
    assert code == 1
    found, expected = codes(report), findings(written)
    assert set(found) == set(expected)
    for code_name, subjects in expected.items():
        assert subjects is None or found[code_name] == subjects
