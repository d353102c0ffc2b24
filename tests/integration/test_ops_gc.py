"""Acceptance: GC returns the space of overwritten and deleted objects, and loses nothing live.

Method: two real nodes replicating, with small segments. A gets many overwrites and
deletes, which B pulls (and so acknowledges). B stops; A gets more overwrites and deletes
(owed to B), noncurrent versions, a delete marker and a multipart upload left in progress.
With A stopped, ``lakenode gc plan`` shows the garbage and ``gc run --force`` shrinks A's
segment files on disk; fsck is clean. Started
again, A serves every version byte-identical and completes the upload; B, started again,
catches up through the changes it missed, whose chunks (of versions overwritten since)
only the change log still needed, and ends up with A's exact state.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from node.cli.main import main
from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess
from tests.integration.test_replication_pull import snapshot

SEGMENT_SIZE = "256KiB"
LIMIT_S = 30.0
ACK_WAIT_S = 1.0  # b's next pull tells a it holds everything
MiB = 1 << 20


def segment_bytes(node: NodeProcess) -> int:
    return sum(p.stat().st_size for p in (node.data_dir / "segments").glob("*.seg"))


def cli(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def versions(s3: Any, bucket: str) -> dict[tuple[str, str], str]:
    """(key, version id) -> SHA-256 of the bytes, for every version of the bucket."""
    listing = s3.list_object_versions(Bucket=bucket)
    return {
        (v["Key"], v["VersionId"]): hashlib.sha256(
            s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        ).hexdigest()
        for v in listing.get("Versions", [])
    }


def test_gc_reclaims_space_and_every_live_object_and_peer_change_survives(
    tmp_path: Path, capsys: Any
) -> None:
    a, b = NodeProcess(tmp_path / "a"), NodeProcess(tmp_path / "b")
    a.extra_args = ["--node-id", "site-a", "--peer", b.url, "--segment-size", SEGMENT_SIZE]
    b.extra_args = ["--node-id", "site-b", "--peer", a.url, "--segment-size", SEGMENT_SIZE]
    a.start()
    b.start()
    try:
        s3 = make_client(a.url)
        for bucket in ("plain", "versioned"):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        overwrite(s3, "acked", rounds=8)  # garbage once b has it all
        wait_for_state(a, b, ["plain", "versioned"])
        time.sleep(ACK_WAIT_S)
        b.stop()

        overwrite(s3, "owed", rounds=3)  # b missed these: their chunks stay until it pulls
        for round_ in range(3):
            s3.put_object(Bucket="versioned", Key="doc", Body=os.urandom(40_000 + round_))
        s3.put_object(Bucket="versioned", Key="marked", Body=b"hidden by a marker")
        s3.delete_object(Bucket="versioned", Key="marked")
        upload = s3.create_multipart_upload(Bucket="plain", Key="mpu")["UploadId"]
        part_data = os.urandom(5 * MiB)
        part = s3.upload_part(
            Bucket="plain", Key="mpu", UploadId=upload, PartNumber=1, Body=part_data
        )
        before = {bucket: versions(s3, bucket) for bucket in ("plain", "versioned")}
        a.stop()

        disk_before = segment_bytes(a)
        data_dir = ["--data-dir", str(a.data_dir)]
        code, plan = cli(capsys, "gc", "plan", *data_dir)
        assert code == 0 and plan["totals"]["reclaimable_bytes"] > 0
        code, run = cli(capsys, "gc", "run", "--force", *data_dir)
        assert code == 0 and run["segments_rewritten"] > 0 and run["reclaimed_bytes"] > 0
        assert segment_bytes(a) < disk_before
        assert main(["fsck", *data_dir]) == 0

        a.start()
        s3 = make_client(a.url)
        assert {bucket: versions(s3, bucket) for bucket in before} == before
        s3.complete_multipart_upload(
            Bucket="plain",
            Key="mpu",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert s3.get_object(Bucket="plain", Key="mpu")["Body"].read() == part_data
        b.start()
        wait_for_state(a, b, ["plain", "versioned"])
    finally:
        a.stop()
        b.stop()


def overwrite(s3: Any, prefix: str, rounds: int) -> None:
    for round_ in range(rounds):
        for n in range(6):
            s3.put_object(Bucket="plain", Key=f"{prefix}{n}", Body=os.urandom(60_000 + round_))
    for n in range(3):
        s3.delete_object(Bucket="plain", Key=f"{prefix}{n}")


def wait_for_state(a: NodeProcess, b: NodeProcess, buckets: list[str]) -> None:
    deadline = time.monotonic() + LIMIT_S
    while True:
        want, got = snapshot(make_client(a.url), buckets), snapshot(make_client(b.url), buckets)
        if want == got:
            return
        assert time.monotonic() < deadline, f"b did not catch up: {got} != {want}"
        time.sleep(0.2)
