"""AWS's default checksum: every new object uploaded WITHOUT a checksum gets a FULL_OBJECT
CRC64NVME (S3 since December 2024), returned with ``x-amz-checksum-mode: ENABLED``, in
GetObjectAttributes, and validated by SDKs on download.

Every expected value comes from tests/checksum_reference.py (a textbook CRC64NVME, not
awscrt). Note what clients send: boto3 at its DEFAULT settings sends a CRC32 with every
upload (and creates multipart uploads with CRC32), so its objects keep that CRC32, as on AWS;
the default CRC64NVME is for clients that send none (boto3 with
``request_checksum_calculation="when_required"``, s3cmd, minio-py, plain HTTP), and for
multipart uploads created without an algorithm (pyarrow's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3.s3.transfer
import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import presign_url
from storage.store import Store
from tests.checksum_reference import b64, composite, full_object
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import error_of
from tests.unit.storage.stores import put_part, run_with_store

MiB = 1 << 20
PART = 5 * MiB


@pytest.fixture(scope="module")
def quiet(node: NodeProcess) -> Any:
    """boto3 told to send checksums only where an operation requires one: no checksum on
    PutObject or UploadPart, and upload_file creates multipart uploads without one."""
    return make_client(node.url, request_checksum_calculation="when_required")


def _transfer() -> boto3.s3.transfer.TransferConfig:
    return boto3.s3.transfer.TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)


def _assert_default_crc(s3: Any, bucket: str, key: str, data: bytes, parts: int = 0) -> None:
    """HEAD, GET (boto3 validates the CRC64NVME it gets back) and GetObjectAttributes give
    the CRC64NVME of ``data``, FULL_OBJECT, and never without checksum mode."""
    expected = b64("CRC64NVME", data)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert (got["ChecksumCRC64NVME"], got["ChecksumType"]) == (expected, "FULL_OBJECT")
    assert "ChecksumCRC64NVME" not in s3.head_object(Bucket=bucket, Key=key)
    attributes = s3.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["Checksum", "ObjectParts"]
    )
    assert attributes["Checksum"] == {"ChecksumCRC64NVME": expected, "ChecksumType": "FULL_OBJECT"}
    assert attributes.get("ObjectParts", {}).get("TotalPartsCount", 0) == parts


# ---- single uploads ---------------------------------------------------------------------------


def test_put_without_checksum_gets_crc64nvme(s3: Any, quiet: Any, bucket: str) -> None:
    data = os.urandom(300_000)
    put = quiet.put_object(Bucket=bucket, Key="k", Body=data)
    # PutObject's answer carries the CRC64NVME S3 added (its API reference says so).
    assert (put["ChecksumCRC64NVME"], put["ChecksumType"]) == (
        b64("CRC64NVME", data),
        "FULL_OBJECT",
    )
    _assert_default_crc(s3, bucket, "k", data)
    quiet.put_object(Bucket=bucket, Key="empty", Body=b"")
    _assert_default_crc(s3, bucket, "empty", b"")


def test_presigned_put_without_checksum(node: NodeProcess, s3: Any, bucket: str) -> None:
    """A plain HTTP client (a presigned URL: nothing but the bytes) gets the default too."""
    data = os.urandom(70_000)
    url = presign_url("PUT", f"{node.url}/{bucket}/plain", ACCESS_KEY, SECRET_KEY, 300, REGION)
    response = httpx.put(url, content=data)
    assert response.status_code == 200
    assert response.headers["x-amz-checksum-crc64nvme"] == b64("CRC64NVME", data)
    assert response.headers["x-amz-checksum-type"] == "FULL_OBJECT"
    _assert_default_crc(s3, bucket, "plain", data)


def test_a_client_checksum_is_kept_alone(s3: Any, bucket: str) -> None:
    """With a checksum of its own (boto3's default CRC32) an object keeps only that one, as
    on AWS: the default is for objects uploaded without any."""
    data = os.urandom(10_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data)
    assert put["ChecksumCRC32"] == b64("CRC32", data)
    assert "ChecksumCRC64NVME" not in put
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == b64("CRC32", data)
    assert "ChecksumCRC64NVME" not in head


def test_upload_file_without_checksums(s3: Any, quiet: Any, bucket: str, tmp_path: Path) -> None:
    """boto3's upload_file sending no checksum: single PUT and a multipart upload created
    without an algorithm both end with the object's CRC64NVME."""
    small = tmp_path / "small"
    small.write_bytes(os.urandom(4096))
    quiet.upload_file(str(small), bucket, "small", Config=_transfer())
    _assert_default_crc(s3, bucket, "small", small.read_bytes())
    large = tmp_path / "large"
    large.write_bytes(os.urandom(PART + 12_345))
    quiet.upload_file(str(large), bucket, "large", Config=_transfer())
    _assert_default_crc(s3, bucket, "large", large.read_bytes(), parts=2)
    target = tmp_path / "back"
    s3.download_file(bucket, "large", str(target))  # the default client validates as it reads
    assert target.read_bytes() == large.read_bytes()


def test_upload_file_at_default_settings_keeps_crc32(s3: Any, bucket: str, tmp_path: Path) -> None:
    """boto3 at default settings sends CRC32 (PUT) and creates CRC32 multipart uploads: the
    objects keep those (COMPOSITE for the multipart one), not a CRC64NVME, as on AWS."""
    small = tmp_path / "small"
    small.write_bytes(os.urandom(4096))
    s3.upload_file(str(small), bucket, "small", Config=_transfer())
    head = s3.head_object(Bucket=bucket, Key="small", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (
        b64("CRC32", small.read_bytes()),
        "FULL_OBJECT",
    )
    assert "ChecksumCRC64NVME" not in head
    data = os.urandom(PART + 100)
    large = tmp_path / "large"
    large.write_bytes(data)
    s3.upload_file(str(large), bucket, "large", Config=_transfer())
    head = s3.head_object(Bucket=bucket, Key="large", ChecksumMode="ENABLED")
    expected = composite("CRC32", [data[:PART], data[PART:]])
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (expected, "COMPOSITE")
    assert "ChecksumCRC64NVME" not in head


def test_post_object_without_checksum(node: NodeProcess, s3: Any, bucket: str) -> None:
    data = os.urandom(20_000)
    post = s3.generate_presigned_post(bucket, "form")
    response = httpx.post(post["url"], data=post["fields"], files={"file": ("f", data)})
    assert response.status_code == 204, response.text
    assert response.headers["x-amz-checksum-crc64nvme"] == b64("CRC64NVME", data)
    _assert_default_crc(s3, bucket, "form", data)


def test_copy_keeps_the_source_checksum(s3: Any, quiet: Any, bucket: str) -> None:
    data = os.urandom(50_000)
    quiet.put_object(Bucket=bucket, Key="src", Body=data)
    done = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    result = done["CopyObjectResult"]
    assert (result["ChecksumCRC64NVME"], result["ChecksumType"]) == (
        b64("CRC64NVME", data),
        "FULL_OBJECT",
    )
    _assert_default_crc(s3, bucket, "dst", data)


# ---- multipart uploads created without an algorithm -------------------------------------------


def _create(s3: Any, bucket: str, key: str) -> str:
    created = s3.create_multipart_upload(Bucket=bucket, Key=key)
    assert "ChecksumAlgorithm" not in created
    upload_id: str = created["UploadId"]
    return upload_id


def _complete(s3: Any, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def test_multipart_without_algorithm_is_full_object_crc64nvme(
    s3: Any, quiet: Any, bucket: str
) -> None:
    parts = [os.urandom(PART), os.urandom(3333)]
    upload_id = _create(quiet, bucket, "mp")
    listed = []
    for number, data in enumerate(parts, start=1):
        part = quiet.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert part["ChecksumCRC64NVME"] == b64("CRC64NVME", data)  # computed, and returned
        listed.append({"PartNumber": number, "ETag": part["ETag"]})
    # ListParts shows the default CRC64NVME of each part (AWS's Part type documents it).
    shown = quiet.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert "ChecksumAlgorithm" not in shown
    assert [p["ChecksumCRC64NVME"] for p in shown["Parts"]] == [
        b64("CRC64NVME", data) for data in parts
    ]
    done = _complete(quiet, bucket, "mp", upload_id, listed)
    expected = full_object("CRC64NVME", parts)
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (expected, "FULL_OBJECT")
    _assert_default_crc(s3, bucket, "mp", b"".join(parts), parts=2)
    attributes = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"])
    assert [p["ChecksumCRC64NVME"] for p in attributes["ObjectParts"]["Parts"]] == [
        b64("CRC64NVME", data) for data in parts
    ]


def test_multipart_without_algorithm_with_crc32_parts(s3: Any, bucket: str) -> None:
    """boto3's default UploadPart sends a CRC32 even when the upload has no algorithm: the
    part keeps it (listed and checked at completion) and the object still gets the
    default CRC64NVME, computed alongside."""
    parts = [os.urandom(PART), os.urandom(10)]
    upload_id = _create(s3, bucket, "mp")
    listed = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert part["ChecksumCRC32"] == b64("CRC32", data)
        assert "ChecksumCRC64NVME" not in part
        listed.append(
            {"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]}
        )
    shown = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [p["ChecksumCRC32"] for p in shown] == [b64("CRC32", data) for data in parts]
    assert all("ChecksumCRC64NVME" not in p for p in shown)  # the client's, as UploadPart
    done = _complete(s3, bucket, "mp", upload_id, listed)
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (
        full_object("CRC64NVME", parts),
        "FULL_OBJECT",
    )
    _assert_default_crc(s3, bucket, "mp", b"".join(parts), parts=2)


def test_multipart_without_algorithm_with_copied_parts(s3: Any, quiet: Any, bucket: str) -> None:
    """UploadPartCopy into an upload without an algorithm: a whole source reuses the
    source's CRC64NVME, a range is read again for its own (ListParts shows them, the
    CopyPartResult does not); the object's CRC is exact."""
    source = os.urandom(PART + 777)
    quiet.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = _create(quiet, bucket, "mp")
    whole = quiet.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
    )["CopyPartResult"]
    assert "ChecksumCRC64NVME" not in whole  # only for uploads created with CRC64NVME (AWS)
    ranged = quiet.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange="bytes=100-4099",
    )["CopyPartResult"]
    shown = quiet.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [p["ChecksumCRC64NVME"] for p in shown] == [
        b64("CRC64NVME", source),
        b64("CRC64NVME", source[100:4100]),
    ]
    done = _complete(
        quiet,
        bucket,
        "mp",
        upload_id,
        [{"PartNumber": 1, "ETag": whole["ETag"]}, {"PartNumber": 2, "ETag": ranged["ETag"]}],
    )
    expected = full_object("CRC64NVME", [source, source[100:4100]])
    assert done["ChecksumCRC64NVME"] == expected
    _assert_default_crc(s3, bucket, "mp", source + source[100:4100], parts=2)


def test_completion_may_list_the_default_part_crc(s3: Any, quiet: Any, bucket: str) -> None:
    """A client that lists the CRC64NVME UploadPart returned with each part: it is checked
    against the part's default CRC (a wrong one is InvalidPart)."""
    data = os.urandom(1000)
    upload_id = _create(quiet, bucket, "mp")
    part = quiet.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=data)
    wrong = [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC64NVME": b64("CRC64NVME", b"x")}]
    with pytest.raises(ClientError) as excinfo:
        _complete(quiet, bucket, "mp", upload_id, wrong)
    assert error_of(excinfo) == (400, "InvalidPart")
    right = [
        {"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC64NVME": part["ChecksumCRC64NVME"]}
    ]
    assert _complete(quiet, bucket, "mp", upload_id, right)["ChecksumCRC64NVME"] == b64(
        "CRC64NVME", data
    )


# ---- objects written before the default existed -----------------------------------------------


@pytest.fixture
def legacy_node(tmp_path: Path) -> Iterator[tuple[NodeProcess, bytes, str]]:
    """A data dir written through the storage API as lakenode wrote it before the default:
    an object and an upload's part without any checksum. Yields (node, data, upload id)."""
    data = os.urandom(PART + 4321)

    async def write(store: Store) -> str:
        await store.create_bucket("old", ACCESS_KEY)
        writer = await store.begin_object("old", "legacy", 1 << 30)
        await writer.write(data)
        await writer.finish()
        await writer.commit([("content-type", "x/y")], ())
        return (await put_part(store, "old", "pending", data)).upload_id

    upload_id = run_with_store(write, tmp_path / "data", bucket=None)
    node = NodeProcess(tmp_path / "data").start()
    try:
        yield node, data, upload_id
    finally:
        node.stop()


def test_objects_written_before_keep_none_and_copies_get_one(
    legacy_node: tuple[NodeProcess, bytes, str],
) -> None:
    node, data, upload_id = legacy_node
    s3 = make_client(node.url)
    head = s3.head_object(Bucket="old", Key="legacy", ChecksumMode="ENABLED")
    assert not [name for name in head if name.startswith("Checksum")]
    with pytest.raises(ClientError) as excinfo:  # still nothing to change: refused
        s3.copy_object(Bucket="old", Key="legacy", CopySource={"Bucket": "old", "Key": "legacy"})
    assert error_of(excinfo) == (400, "InvalidRequest")
    copied = s3.copy_object(Bucket="old", Key="copy", CopySource={"Bucket": "old", "Key": "legacy"})
    assert copied["CopyObjectResult"]["ChecksumCRC64NVME"] == b64("CRC64NVME", data)
    _assert_default_crc(s3, "old", "copy", data)
    # A part uploaded before has no default CRC: its object gets no checksum (nothing is
    # read again at completion).
    part = s3.list_parts(Bucket="old", Key="pending", UploadId=upload_id)["Parts"][0]
    _complete(s3, "old", "pending", upload_id, [{"PartNumber": 1, "ETag": part["ETag"]}])
    head = s3.head_object(Bucket="old", Key="pending", ChecksumMode="ENABLED")
    assert not [name for name in head if name.startswith("Checksum")]
