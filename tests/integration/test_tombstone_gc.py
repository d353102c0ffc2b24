"""Tombstone GC between real nodes, and `repl validate --deep`.

Method: two nodes replicate both ways with a 1 s tombstone window and GC every 0.3 s. Deletes
replicate, then both sites purge their tombstones and prune their logs; validate still
agrees (a tombstone one side has purged earlier is not a difference), and a new site that
tries to pull the pruned log is told to bootstrap. ``--deep`` compares chunk lists: a
manifest whose chunk hash was altered on one side (same ETag) is invisible to the Merkle
walk but found by the deep comparison.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from storage.manifest import Kind, decode
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess
from tests.integration.test_replication_validate import validate, wait_until_agree

GC_ARGS = ["--repl-tombstone-window", "1s", "--repl-gc-interval", "0.3s"]
LIMIT_S = 30.0


def _count(data_dir: Path, sql: str, *params: object) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'meta.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def _tombstones(data_dir: Path) -> int:
    return _count(data_dir, "SELECT count(*) FROM versions WHERE kind = ?", int(Kind.TOMBSTONE))


def _wait(condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not _holds(check):
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.2)


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except ClientError:  # e.g. NoSuchBucket before the bucket has replicated
        return False


def _repl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "repl", *args,
         "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _conflicts(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "repl", "conflicts", "--json", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_tombstones_are_purged_after_both_sites_hold_them(tmp_path: Path) -> None:
    a, b = NodeProcess(tmp_path / "a"), NodeProcess(tmp_path / "b")
    a.extra_args = ["--node-id", "node-a", "--peer", b.url, *GC_ARGS]
    b.extra_args = ["--node-id", "node-b", "--peer", a.url, *GC_ARGS]
    a.start()
    b.start()
    late = NodeProcess(tmp_path / "late", extra_args=["--node-id", "late", "--peer", a.url])
    try:
        on_a, on_b = make_client(a.url), make_client(b.url)
        on_a.create_bucket(Bucket="gcb")
        for index in range(20):
            on_a.put_object(Bucket="gcb", Key=f"k{index}", Body=b"x" * index)
        _wait("the puts on b", lambda: on_b.list_objects_v2(Bucket="gcb")["KeyCount"] == 20)
        for index in range(20):
            on_a.delete_object(Bucket="gcb", Key=f"k{index}")
        _wait("the deletes on b", lambda: on_b.list_objects_v2(Bucket="gcb")["KeyCount"] == 0)
        _wait(
            "both sites to purge", lambda: _tombstones(a.data_dir) == _tombstones(b.data_dir) == 0
        )
        _wait(
            "a's log to be pruned",
            lambda: _count(
                a.data_dir, "SELECT count(*) FROM meta WHERE name = 'log_pruned_through'"
            ) == 1,
        )  # fmt: skip
        agreed = wait_until_agree(b.data_dir, a.url)
        assert agreed.returncode == 0, agreed.stdout + agreed.stderr
        # Deleted objects stay deleted; a new write after the purge replicates as usual.
        on_b.put_object(Bucket="gcb", Key="after", Body=b"new")
        _wait("the new write on a", lambda: on_a.list_objects_v2(Bucket="gcb")["KeyCount"] == 1)

        late.start()  # pulls from seq 0 of a log that no longer starts there

        def told_to_bootstrap() -> bool:
            status = _repl("status", "--data-dir", str(late.data_dir), "--json")
            return "bootstrap" in status.stdout.lower()

        _wait("the late site to be told to bootstrap", told_to_bootstrap)
        assert make_client(late.url).list_buckets()["Buckets"] == []  # applied nothing
    finally:
        late.stop()
        b.stop()
        a.stop()


def _alter_first_chunk_hash(data_dir: Path, bucket: str, key: str) -> None:
    """Change one chunk hash of a version's manifest in place (same ETag): a silent
    divergence that only a chunk-level comparison can see."""
    conn = sqlite3.connect(data_dir / "meta.db")
    try:
        (raw,) = conn.execute(
            "SELECT manifest FROM versions WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        manifest = decode(bytes(raw))
        first = dataclasses.replace(manifest.chunks[0], blake3=bytes(32))
        altered = dataclasses.replace(manifest, chunks=(first, *manifest.chunks[1:]))
        with conn:
            conn.execute(
                "UPDATE versions SET manifest = ? WHERE bucket = ? AND key = ?",
                (altered.encode(), bucket, key),
            )
    finally:
        conn.close()


def test_validate_deep_finds_a_chunk_difference_the_merkle_walk_cannot(tmp_path: Path) -> None:
    a = NodeProcess(tmp_path / "a", extra_args=["--node-id", "site-a"]).start()
    b = NodeProcess(tmp_path / "b", extra_args=["--node-id", "site-b", "--peer", a.url]).start()
    try:
        on_a = make_client(a.url)
        on_a.create_bucket(Bucket="deep")
        for index in range(30):
            on_a.put_object(Bucket="deep", Key=f"k{index}", Body=b"%d" % index * 1000)
        assert wait_until_agree(b.data_dir, a.url).returncode == 0
        deep = _repl("validate", "--deep", "--data-dir", str(b.data_dir), "--peer", a.url)
        assert deep.returncode == 0, deep.stdout + deep.stderr
        assert "30 keys compared with their chunk lists" in deep.stdout
        b.stop()
        _alter_first_chunk_hash(b.data_dir, "deep", "k7")
        shallow = validate(b.data_dir, a.url)
        assert shallow.returncode == 0, "the Merkle leaf does not cover chunk hashes"
        deep = _repl("validate", "--deep", "--data-dir", str(b.data_dir), "--peer", a.url)
        assert deep.returncode == 1, deep.stdout + deep.stderr
        rows = [line.split("\t") for line in deep.stdout.splitlines() if "\t" in line]
        assert [(row[0], row[1]) for row in rows] == [("deep", "k7")]
        assert "1 difference(s)" in deep.stdout
    finally:
        b.stop()
        a.stop()


def test_conflicts_are_listed(tmp_path: Path) -> None:
    """Concurrent writes to one key on two sites: the loser is listed by `repl conflicts`."""
    a, b = NodeProcess(tmp_path / "a"), NodeProcess(tmp_path / "b")
    a.extra_args = ["--node-id", "node-a", "--peer", b.url]
    b.extra_args = ["--node-id", "node-b", "--peer", a.url]
    a.start()
    b.start()
    make_client(a.url).create_bucket(Bucket="cfl")
    _wait(
        "the bucket on b",
        lambda: any(x["Name"] == "cfl" for x in make_client(b.url).list_buckets()["Buckets"]),
    )
    a.stop()  # a does not see b's write before making its own: a true conflict
    make_client(b.url).put_object(Bucket="cfl", Key="k", Body=b"from b")
    b.stop()
    a.start()
    on_a = make_client(a.url)
    time.sleep(0.01)
    on_a.put_object(Bucket="cfl", Key="k", Body=b"from a, later")
    b.start()
    try:
        _wait(
            "a conflict record on b",
            lambda: (
                _count(b.data_dir, "SELECT count(*) FROM conflicts") > 0
                or _count(a.data_dir, "SELECT count(*) FROM conflicts") > 0
            ),
        )
        listed = [
            json.loads(line)
            for site in (a, b)
            for line in _conflicts(site.data_dir).stdout.splitlines()
        ]
        assert any(
            r["bucket"] == "cfl" and r["key"] == "k" and r["origin"] == "node-b" for r in listed
        )
    finally:
        b.stop()
        a.stop()
