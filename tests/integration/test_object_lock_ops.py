"""Operator tools with locked versions present: `gc`, `mpu-gc`, `rebuild-index`, `restore`.

One node writes a lock-enabled bucket (COMPLIANCE and GOVERNANCE retention by header, a
legal hold, a retention extended by PutObjectRetention, the bucket's default retention,
garbage from overwrites, a stale multipart upload), then, stopped, is garbage-collected,
mpu-gc'd, snapshotted, rebuilt from its segments and finally restored from the snapshot.
After each step every version must still be there with the same bytes, and the lock state
HEAD shows (and the refusal of a delete) must be what it was before.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess
from tests.integration.test_rebuild_index import lakenode

pytestmark = pytest.mark.slow

BUCKET = "vault"
Versions = dict[tuple[str, str], str]
Locks = dict[tuple[str, str], tuple[str | None, str | None, str | None]]


@dataclass
class Observed:
    versions: Versions = field(default_factory=dict)
    locks: Locks = field(default_factory=dict)
    delete_refused: dict[tuple[str, str], bool] = field(default_factory=dict)


def observe(s3: Any, *, try_deletes: bool) -> Observed:
    """Every version's bytes and lock headers; then (optionally) whether a delete of each
    locked one is refused (after the bytes are recorded: a wrongly allowed delete loses it)."""
    seen = Observed()
    for version in s3.list_object_versions(Bucket=BUCKET).get("Versions", []):
        where = (version["Key"], version["VersionId"])
        got = s3.get_object(Bucket=BUCKET, Key=where[0], VersionId=where[1])
        seen.versions[where] = hashlib.sha256(got["Body"].read()).hexdigest()
        until = got.get("ObjectLockRetainUntilDate")
        seen.locks[where] = (
            got.get("ObjectLockMode"),
            until.isoformat() if until is not None else None,
            got.get("ObjectLockLegalHoldStatus"),
        )
    if try_deletes:
        for where, (mode, _until, hold) in seen.locks.items():
            if mode is None and hold != "ON":
                continue
            try:
                s3.delete_object(Bucket=BUCKET, Key=where[0], VersionId=where[1])
            except ClientError as refused:
                seen.delete_refused[where] = refused.response["Error"]["Code"] == "AccessDenied"
            else:
                seen.delete_refused[where] = False
    return seen


def write_locked_vault(s3: Any) -> None:
    far = datetime.now(UTC) + timedelta(days=30)
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    for n in range(3):
        for mode in ("COMPLIANCE", "GOVERNANCE"):
            s3.put_object(
                Bucket=BUCKET, Key=f"{mode.lower()}{n}", Body=os.urandom(70_000),
                ObjectLockMode=mode, ObjectLockRetainUntilDate=far,
            )  # fmt: skip
    s3.put_object(
        Bucket=BUCKET, Key="held", Body=os.urandom(50_000), ObjectLockLegalHoldStatus="ON"
    )
    s3.put_object(Bucket=BUCKET, Key="extended", Body=b"extend me", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=far)  # fmt: skip
    s3.put_object_retention(
        Bucket=BUCKET, Key="extended",
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": far + timedelta(days=365)},
    )  # fmt: skip
    s3.put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}},
        },
    )
    s3.put_object(Bucket=BUCKET, Key="defaulted", Body=b"default retention")
    s3.put_object(Bucket=BUCKET, Key="marked", Body=b"x", ObjectLockLegalHoldStatus="ON")
    s3.delete_object(Bucket=BUCKET, Key="marked")  # a marker over a held version
    s3.create_multipart_upload(Bucket=BUCKET, Key="stale", ObjectLockLegalHoldStatus="ON")
    s3.create_bucket(Bucket="scratch")  # garbage for gc: overwritten, unlocked
    for _ in range(6):
        s3.put_object(Bucket="scratch", Key="tmp", Body=os.urandom(200_000))


@dataclass
class Run:
    before: Observed
    after_gc: Observed
    after_rebuild: Observed
    after_restore: Observed
    gc_output: str
    mpu_gc_output: str
    rebuild_code: int


def ok(*args: str) -> str:
    done = lakenode(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("lock-ops")
    node = NodeProcess(root / "data", extra_args=["--segment-size", "256KiB"]).start()
    data_dir = ["--data-dir", str(node.data_dir)]
    try:
        write_locked_vault(make_client(node.url))
        before = observe(make_client(node.url), try_deletes=True)
        node.stop()
        gc_output = ok("gc", "run", "--force", *data_dir)
        mpu_gc_output = ok("mpu-gc", "run", "--older-than", "0s", "--json", *data_dir)
        node.start()
        after_gc = observe(make_client(node.url), try_deletes=True)
        node.stop()
        ok("snapshot", "--out", str(root / "snapshot"), *data_dir)
        for path in node.data_dir.glob("meta.db*"):
            path.unlink()
        rebuilt = lakenode("rebuild-index", *data_dir)
        node.start()
        after_rebuild = observe(make_client(node.url), try_deletes=True)
        node.stop()
        ok("restore", "--from", str(root / "snapshot"), "--force", *data_dir)
        node.start()
        after_restore = observe(make_client(node.url), try_deletes=True)
        yield Run(
            before,
            after_gc,
            after_rebuild,
            after_restore,
            gc_output,
            mpu_gc_output,
            rebuilt.returncode,
        )
    finally:
        node.stop()


def test_the_vault_is_locked_before_the_tools_run(run: Run) -> None:
    assert len(run.before.versions) == 3 * 2 + 4
    assert run.before.delete_refused and all(run.before.delete_refused.values())
    assert set(run.before.delete_refused) == {
        w for w, lock in run.before.locks.items() if any(lock)
    }


def test_gc_and_mpu_gc_keep_every_locked_version_and_its_lock(run: Run) -> None:
    assert len(json.loads(run.mpu_gc_output)["aborted"]) == 1  # the stale upload only
    assert run.after_gc.versions == run.before.versions
    assert run.after_gc.locks == run.before.locks
    assert run.after_gc.delete_refused == run.before.delete_refused


def test_restore_brings_back_every_locked_version_and_its_lock(run: Run) -> None:
    assert run.after_restore.versions == run.before.versions
    assert run.after_restore.locks == run.before.locks
    assert run.after_restore.delete_refused == run.before.delete_refused


def test_rebuild_index_keeps_every_locked_version(run: Run) -> None:
    assert run.after_rebuild.versions == run.before.versions


def test_rebuild_index_keeps_every_lock(run: Run) -> None:
    assert run.rebuild_code == 0
    assert run.after_rebuild.locks == run.before.locks
    assert run.after_rebuild.delete_refused == run.before.delete_refused
