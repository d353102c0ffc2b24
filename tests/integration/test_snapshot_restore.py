"""`lakenode snapshot` and `lakenode restore` with real nodes.

Method: four writers PUT continuously into a real node while a snapshot is taken beside
it; the snapshot is restored into a new data dir, a node started there, and every object it
serves is checked against what the writers were told (acknowledged before the snapshot:
present and byte-identical; begun after it: absent). A second test restores one site of a
replicating pair and checks that replication carries on both ways without skipping.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from storage.ops.snapshot import take_snapshot
from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess, two_way_pair

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WRITERS = 4
LIMIT_S = 20.0


class Quiet:
    def advance(self, done: int, total: int | None, unit: str) -> None:
        return None

    def note(self, message: str) -> None:
        return None


def lakenode(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "node", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def content(key: str) -> bytes:
    """Each key's bytes follow from its name, so any object served can be checked."""
    seed = hashlib.sha256(key.encode()).digest()
    size = 500 + int.from_bytes(seed[:2], "big") % 200_000
    return (seed * (size // len(seed) + 1))[:size]


class Writers:
    """WRITERS threads putting fresh keys until stopped; what each was told, and when."""

    def __init__(self, url: str, bucket: str) -> None:
        self.url, self.bucket = url, bucket
        self.done: list[tuple[float, float, str]] = []  # (started, acknowledged, key)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(WRITERS)
        ]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not self.errors, self.errors

    def _run(self, number: int) -> None:
        s3 = make_client(self.url)
        count = 0
        try:
            while not self._stop.is_set():
                key = f"w{number}/{count:05d}"
                started = time.monotonic()
                s3.put_object(Bucket=self.bucket, Key=key, Body=content(key))
                self.done.append((started, time.monotonic(), key))
                count += 1
        except BaseException as exc:
            self.errors.append(exc)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + LIMIT_S
        while len(self.done) < count:
            assert time.monotonic() < deadline and not self.errors, self.errors
            time.sleep(0.02)


def served_keys(url: str, bucket: str) -> set[str]:
    """Every key served, each checked byte for byte against content(key)."""
    s3 = make_client(url)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            assert body == content(item["Key"]), item["Key"]
            keys.add(item["Key"])
    return keys


def test_snapshot_under_write_load_restores_to_a_consistent_node(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", extra_args=["--segment-size", "2MiB"]).start()
    live_snapshot, offline_snapshot = tmp_path / "live-snapshot", tmp_path / "offline-snapshot"
    try:
        make_client(node.url).create_bucket(Bucket="load")
        with Writers(node.url, "load") as writers:
            writers.wait_for(60)
            # Beside the running node: the CLI asks it (admin channel) to take the snapshot.
            began = time.monotonic()
            live = lakenode(
                "snapshot", "--data-dir", str(node.data_dir), "--out", str(live_snapshot),
                "--json",
            )  # fmt: skip
            ended = time.monotonic()
            assert live.returncode == 0, live.stderr
            report = json.loads(live.stdout)
            writers.wait_for(len(writers.done) + 20)
        acknowledged = {key for _started, _done, key in writers.done}
        before = {key for _started, done, key in writers.done if done < began}
        after = {key for started, _done, key in writers.done if started > ended}
        assert after and report["segments"] > 1
    finally:
        node.stop()
    offline = lakenode(
        "snapshot", "--data-dir", str(node.data_dir), "--out", str(offline_snapshot), "--json"
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["objects"] == len(acknowledged)

    for snapshot, expected in ((live_snapshot, None), (offline_snapshot, acknowledged)):
        restored = NodeProcess(tmp_path / f"restored-from-{snapshot.name}")
        done = lakenode(
            "restore", "--from", str(snapshot), "--data-dir", str(restored.data_dir), "--json"
        )
        assert done.returncode == 0, done.stderr
        restored.start()
        try:
            keys = served_keys(restored.url, "load")
        finally:
            restored.stop()
        checked = lakenode("fsck", "--data-dir", str(restored.data_dir), "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert json.loads(checked.stdout)["clean"] is True
        if expected is None:
            assert before <= keys and not keys & after and len(keys) == report["objects"]
        else:
            assert keys == expected


def wait_for_object(url: str, bucket: str, key: str) -> bytes:
    s3 = make_client(url)
    deadline = time.monotonic() + LIMIT_S
    while True:
        try:
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        except ClientError as exc:
            assert time.monotonic() < deadline, f"{key} never reached {url}: {exc}"
            time.sleep(0.2)


def test_a_restored_site_rejoins_replication_without_skipping_changes(tmp_path: Path) -> None:
    a, b = two_way_pair(tmp_path)
    try:
        s3a, s3b = make_client(a.url), make_client(b.url)
        s3a.create_bucket(Bucket="shared")
        s3a.put_object(Bucket="shared", Key="before", Body=b"in the snapshot")
        wait_for_object(b.url, "shared", "before")
        take_snapshot(a.data_dir, tmp_path / "snap", Quiet())
        for number in range(30):  # b's cursor in a's log moves well past the snapshot
            s3a.put_object(Bucket="shared", Key=f"lost/{number}", Body=b"after the snapshot")
        wait_for_object(b.url, "shared", "lost/29")
        a.stop()
        s3b.put_object(Bucket="shared", Key="from-b", Body=b"written on b meanwhile")
        restored = lakenode(
            "restore", "--from", str(tmp_path / "snap"), "--data-dir", str(a.data_dir), "--force"
        )
        assert restored.returncode == 0, restored.stderr
        a.start()

        s3a.put_object(Bucket="shared", Key="after-restore", Body=b"new on the restored a")

        assert wait_for_object(b.url, "shared", "after-restore") == b"new on the restored a"
        assert wait_for_object(a.url, "shared", "from-b") == b"written on b meanwhile"
        # a's own writes after the snapshot, lost with its data dir, come back from b (a
        # pulls its own changes once after a restore), and b keeps them.
        for number in (0, 29):
            key = f"lost/{number}"
            assert wait_for_object(a.url, "shared", key) == b"after the snapshot"
            assert s3b.get_object(Bucket="shared", Key=key)["Body"].read() == b"after the snapshot"
    finally:
        a.stop()
        b.stop()
