"""The MinIO Python SDK (minio-py) against a real node."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error as MinioS3Error

from tests.integration.clients import MiB, sha256_file, write_random
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

# Below minio-py's 5 MiB minimum part size, so fput_object sends one PutObject
# (multipart is not implemented yet).
FILE_SIZE = 4 * MiB + 321


@pytest.fixture(scope="module")
def mc(node: NodeProcess) -> Minio:
    return Minio(
        f"127.0.0.1:{node.port}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        secure=False,
        region=REGION,
    )


def _names(objects: Any) -> list[str]:
    return [o.object_name for o in objects]


def test_make_bucket_exists_remove_bucket(mc: Minio, s3: Any) -> None:
    name = "minio-make-remove"
    assert mc.bucket_exists(name) is False
    mc.make_bucket(name)
    assert mc.bucket_exists(name) is True
    assert name in [b.name for b in mc.list_buckets()]
    s3.head_bucket(Bucket=name)

    mc.remove_bucket(name)
    assert mc.bucket_exists(name) is False
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_make_existing_bucket_succeeds_and_remove_non_empty_fails(mc: Minio, bucket: str) -> None:
    mc.make_bucket(bucket)  # its owner again, in us-east-1: 200 as on AWS

    mc.put_object(bucket, "k", io.BytesIO(b"v"), 1)
    with pytest.raises(MinioS3Error) as not_empty:
        mc.remove_bucket(bucket)
    assert not_empty.value.code == "BucketNotEmpty"
    assert mc.bucket_exists(bucket) is True


def test_fput_fget_round_trip(mc: Minio, s3: Any, bucket: str, tmp_path: Path) -> None:
    source = write_random(tmp_path / "up.bin", FILE_SIZE)
    result = mc.fput_object(bucket, "files/up.bin", str(source))
    expected_md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert result.etag == expected_md5
    assert s3.head_object(Bucket=bucket, Key="files/up.bin")["ContentLength"] == FILE_SIZE

    target = tmp_path / "down" / "up.bin"
    mc.fget_object(bucket, "files/up.bin", str(target))
    assert target.stat().st_size == FILE_SIZE
    assert sha256_file(target) == sha256_file(source)


def test_put_get_stat_with_metadata(mc: Minio, bucket: str) -> None:
    data = os.urandom(100_000)
    mc.put_object(
        bucket,
        "meta/obj.bin",
        io.BytesIO(data),
        len(data),
        content_type="application/x-lakenode-test",
        metadata={"colour": "blue", "x-amz-meta-owner": "ann"},
    )

    response = mc.get_object(bucket, "meta/obj.bin")
    try:
        assert response.read() == data
        assert response.headers["x-amz-meta-colour"] == "blue"
    finally:
        response.close()
        response.release_conn()

    ranged = mc.get_object(bucket, "meta/obj.bin", offset=10, length=20)
    try:
        assert ranged.read() == data[10:30]
    finally:
        ranged.close()
        ranged.release_conn()

    stat = mc.stat_object(bucket, "meta/obj.bin")
    assert stat.size == len(data)
    assert stat.etag == hashlib.md5(data).hexdigest()
    assert stat.content_type == "application/x-lakenode-test"
    assert stat.metadata is not None
    assert stat.metadata["x-amz-meta-colour"] == "blue"
    assert stat.metadata["x-amz-meta-owner"] == "ann"
    assert stat.last_modified is not None

    with pytest.raises(MinioS3Error) as missing:
        mc.stat_object(bucket, "meta/absent")
    assert missing.value.code == "NoSuchKey"
    with pytest.raises(MinioS3Error) as missing_get:
        mc.get_object(bucket, "meta/absent")
    assert missing_get.value.code == "NoSuchKey"


def test_list_objects_recursive_and_prefix(mc: Minio, bucket: str) -> None:
    keys = ["a/1.txt", "a/2.txt", "a/b/3.txt", "c.txt", "d/4.txt"]
    for key in keys:
        mc.put_object(bucket, key, io.BytesIO(key.encode()), len(key))

    # minio-py yields a page's objects first, then its common prefixes.
    top = sorted(mc.list_objects(bucket), key=lambda o: o.object_name)
    assert _names(top) == ["a/", "c.txt", "d/"]
    assert [o.is_dir for o in top] == [True, False, True]
    assert next(o for o in top if o.object_name == "c.txt").size == len("c.txt")

    assert _names(mc.list_objects(bucket, recursive=True)) == sorted(keys)
    assert sorted(_names(mc.list_objects(bucket, prefix="a/"))) == ["a/1.txt", "a/2.txt", "a/b/"]
    assert _names(mc.list_objects(bucket, prefix="a/", recursive=True)) == [
        "a/1.txt",
        "a/2.txt",
        "a/b/3.txt",
    ]
    assert _names(mc.list_objects(bucket, prefix="zzz", recursive=True)) == []
    # Version 1 listing too.
    assert _names(mc.list_objects(bucket, recursive=True, use_api_v1=True)) == sorted(keys)


def test_remove_object_and_remove_objects(mc: Minio, bucket: str) -> None:
    keys = [f"batch/{i:03}" for i in range(25)] + ["single"]
    for key in keys:
        mc.put_object(bucket, key, io.BytesIO(b"x"), 1)

    mc.remove_object(bucket, "single")
    with pytest.raises(MinioS3Error) as removed:
        mc.stat_object(bucket, "single")
    assert removed.value.code == "NoSuchKey"
    mc.remove_object(bucket, "single")  # idempotent

    to_delete = [DeleteObject(k) for k in keys[:20]]
    errors = list(mc.remove_objects(bucket, to_delete))
    assert errors == []
    assert _names(mc.list_objects(bucket, recursive=True)) == keys[20:25]


def test_object_lock_and_lifecycle_at_default_settings(mc: Minio) -> None:
    """minio-py over plain HTTP signs the payload's SHA-256 instead of sending Content-MD5 on
    a PutObject with lock settings: the node takes that as the integrity check it needs."""
    from datetime import UTC, datetime, timedelta

    from minio.commonconfig import COMPLIANCE, ENABLED, GOVERNANCE, Filter
    from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
    from minio.objectlockconfig import DAYS, ObjectLockConfig
    from minio.retention import Retention

    mc.make_bucket("minio-lock", object_lock=True)
    mc.set_object_lock_config("minio-lock", ObjectLockConfig(GOVERNANCE, 1, DAYS))
    config = mc.get_object_lock_config("minio-lock")
    assert (config.mode, config.duration, config.duration_unit) == (GOVERNANCE, 1, DAYS)
    until = datetime.now(UTC) + timedelta(days=1)
    written = mc.put_object(
        "minio-lock", "k", io.BytesIO(b"kept"), 4,
        retention=Retention(COMPLIANCE, until), legal_hold=True,
    )  # fmt: skip
    version = written.version_id
    retention = mc.get_object_retention("minio-lock", "k", version_id=version)
    assert retention.mode == COMPLIANCE
    assert abs((retention.retain_until_date - until).total_seconds()) < 1
    assert mc.is_object_legal_hold_enabled("minio-lock", "k", version_id=version)
    mc.disable_object_legal_hold("minio-lock", "k", version_id=version)
    assert not mc.is_object_legal_hold_enabled("minio-lock", "k", version_id=version)
    with pytest.raises(MinioS3Error) as refused:
        mc.remove_object("minio-lock", "k", version_id=version)
    assert refused.value.code == "AccessDenied"
    stat = mc.stat_object("minio-lock", "k", version_id=version)
    assert stat.metadata["x-amz-object-lock-mode"] == "COMPLIANCE"
    rule = Rule(ENABLED, rule_filter=Filter(prefix="logs/"), rule_id="r1",
                expiration=Expiration(days=30))  # fmt: skip
    mc.set_bucket_lifecycle("minio-lock", LifecycleConfig([rule]))
    rules = mc.get_bucket_lifecycle("minio-lock").rules
    assert [(r.rule_id, r.expiration.days) for r in rules] == [("r1", 30)]
    mc.delete_bucket_lifecycle("minio-lock")
    assert mc.get_bucket_lifecycle("minio-lock") is None
