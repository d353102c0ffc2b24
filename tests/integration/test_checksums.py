"""Additional checksums end to end (boto3 against a real node): PutObject, multipart uploads
with composite checksums, and GetObjectAttributes. Expected values are computed here
independently (tests/checksum_reference.py), never taken from the node."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.checksum_reference import b64, composite
from tests.integration.s3util import error_of, upload_checksummed_parts

MiB = 1 << 20


# ---- PutObject --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_put_checksum_is_stored_and_returned(s3: Any, bucket: str, algorithm: str) -> None:
    data = os.urandom(100_000)
    expected = b64(algorithm, data)
    if algorithm == "CRC32C":  # botocore computes CRC32C only with awscrt: send the value
        put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumCRC32C=expected)
    else:
        put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == expected
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert f"Checksum{algorithm}" not in plain


def test_wrong_checksum_header_is_bad_digest(s3: Any, bucket: str) -> None:
    wrong = b64("CRC32", b"something else")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"payload", ChecksumCRC32=wrong)
    assert error_of(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(excinfo)[0] == 404


# ---- multipart --------------------------------------------------------------------------------


def _multipart(
    s3: Any, bucket: str, key: str, parts: list[bytes], algorithm: str = "CRC32"
) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm)[
        "UploadId"
    ]
    listed = upload_checksummed_parts(s3, bucket, key, upload_id, algorithm, parts)
    return upload_id, listed


def test_multipart_composite_checksum_end_to_end(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 1), os.urandom(12345)]
    upload_id, listed = _multipart(s3, bucket, "mp", parts)
    shown = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [p["ChecksumCRC32"] for p in shown] == [b64("CRC32", p) for p in parts]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    expected = composite("CRC32", parts)
    assert done["ChecksumCRC32"] == expected
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == expected
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == expected
    assert got["Body"].read() == b"".join(parts)


def test_multipart_sha256_composite(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(10)]
    upload_id, listed = _multipart(s3, bucket, "mp", parts, "SHA256")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert done["ChecksumSHA256"] == composite("SHA256", parts)


def test_complete_with_wrong_part_checksum_is_invalid_part(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(10)]
    upload_id, listed = _multipart(s3, bucket, "mp", parts)
    listed[1]["ChecksumCRC32"] = b64("CRC32", b"not the part")
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    assert error_of(excinfo) == (400, "InvalidPart")
    listed[1]["ChecksumCRC32"] = b64("CRC32", parts[1])
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )


def test_complete_must_list_the_uploads_checksum(s3: Any, bucket: str) -> None:
    upload_id, listed = _multipart(s3, bucket, "mp", [b"small"])
    del listed[0]["ChecksumCRC32"]
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
        )
    assert error_of(excinfo) == (400, "InvalidRequest")


def test_part_with_another_algorithm_is_refused(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"x",
            ChecksumAlgorithm="CRC32",
        )
    assert error_of(excinfo) == (400, "InvalidRequest")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []


def test_unsupported_upload_algorithm_is_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC16")
    assert error_of(excinfo) == (400, "InvalidRequest")


def test_upload_part_copy_gets_the_uploads_checksum(s3: Any, bucket: str) -> None:
    source = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    copied = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]
    assert copied["ChecksumCRC32"] == b64("CRC32", source[: 5 * MiB])
    tail = s3.upload_part(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=2,
        Body=source[5 * MiB :],
        ChecksumAlgorithm="CRC32",
    )
    listed = [
        {"PartNumber": 1, "ETag": copied["ETag"], "ChecksumCRC32": copied["ChecksumCRC32"]},
        {"PartNumber": 2, "ETag": tail["ETag"], "ChecksumCRC32": tail["ChecksumCRC32"]},
    ]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert done["ChecksumCRC32"] == composite("CRC32", [source[: 5 * MiB], source[5 * MiB :]])


# ---- GetObjectAttributes ----------------------------------------------------------------------

ALL_ATTRIBUTES = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


def test_attributes_of_a_simple_object(s3: Any, bucket: str) -> None:
    data = os.urandom(1000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=ALL_ATTRIBUTES)
    assert got["ETag"] == hashlib.md5(data).hexdigest() == put["ETag"].strip('"')
    assert got["ObjectSize"] == 1000
    assert got["StorageClass"] == "STANDARD"
    assert got["Checksum"]["ChecksumSHA256"] == b64("SHA256", data)
    assert got["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert "ObjectParts" not in got
    assert "LastModified" in got
    only_size = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert only_size["ObjectSize"] == 1000
    assert "ETag" not in only_size and "Checksum" not in only_size


def test_attributes_of_a_multipart_object(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(7)]
    upload_id, listed = _multipart(s3, bucket, "mp", parts)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL_ATTRIBUTES)
    assert got["ObjectSize"] == sum(len(p) for p in parts)
    assert got["ETag"].endswith("-3")
    assert got["Checksum"]["ChecksumCRC32"] == composite("CRC32", parts)
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    object_parts = got["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 3
    assert [(p["PartNumber"], p["Size"]) for p in object_parts["Parts"]] == [
        (1, 5 * MiB),
        (2, 5 * MiB),
        (3, 7),
    ]
    assert [p["ChecksumCRC32"] for p in object_parts["Parts"]] == [b64("CRC32", p) for p in parts]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert page["IsTruncated"] is True
    assert page["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket,
        Key="mp",
        ObjectAttributes=["ObjectParts"],
        PartNumberMarker=page["NextPartNumberMarker"],
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]
    assert rest["IsTruncated"] is False


def test_attributes_of_a_version_and_missing_object(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"three")
    got = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=first, ObjectAttributes=["ObjectSize"]
    )
    assert got["ObjectSize"] == 3
    assert got["VersionId"] == first
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_attributes(Bucket=bucket, Key="nope", ObjectAttributes=["ObjectSize"])
    assert error_of(excinfo) == (404, "NoSuchKey")
