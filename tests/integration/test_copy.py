"""CopyObject through boto3 against a real node: metadata directives, keys that need
encoding, versions, the four copy-source conditions, self-copies and errors."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import MiB, error_of, md5_etag, multipart_etag, send

PAST = datetime.now(UTC) - timedelta(days=1)
FUTURE = datetime.now(UTC) + timedelta(days=1)


def read(s3: Any, bucket: str, key: str, **extra: Any) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


@pytest.fixture
def source(s3: Any, bucket: str) -> tuple[str, bytes, str]:
    """(key, bytes, ETag) of an object with standard headers and user metadata."""
    data = b"copy me " * 1000
    etag = s3.put_object(
        Bucket=bucket,
        Key="src.txt",
        Body=data,
        ContentType="text/plain",
        CacheControl="max-age=10",
        ContentDisposition="inline",
        Metadata={"colour": "red", "shape": "round"},
    )["ETag"]
    return "src.txt", data, str(etag)


def test_copy_directive_keeps_everything(
    s3: Any, bucket: str, source: tuple[str, bytes, str]
) -> None:
    key, data, etag = source
    result = s3.copy_object(
        Bucket=bucket,
        Key="dst.txt",
        CopySource={"Bucket": bucket, "Key": key},
        # Ignored under COPY (the default), as on AWS.
        Metadata={"ignored": "yes"},
        ContentType="application/ignored",
    )
    copied = result["CopyObjectResult"]
    assert copied["ETag"] == etag == md5_etag(data)
    assert isinstance(copied["LastModified"], datetime)
    assert "CopySourceVersionId" not in result  # unversioned source

    head = s3.head_object(Bucket=bucket, Key="dst.txt")
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "max-age=10"
    assert head["ContentDisposition"] == "inline"
    assert head["Metadata"] == {"colour": "red", "shape": "round"}
    assert head["ETag"] == etag
    assert read(s3, bucket, "dst.txt") == data

    explicit = s3.copy_object(
        Bucket=bucket,
        Key="dst2.txt",
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="COPY",
    )
    assert explicit["CopyObjectResult"]["ETag"] == etag
    assert s3.head_object(Bucket=bucket, Key="dst2.txt")["Metadata"] == head["Metadata"]


def test_replace_directive_takes_the_request_headers(
    s3: Any, bucket: str, source: tuple[str, bytes, str]
) -> None:
    key, data, etag = source
    s3.copy_object(
        Bucket=bucket,
        Key="dst.txt",
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"new": "value"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst.txt")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"new": "value"}
    assert "CacheControl" not in head and "ContentDisposition" not in head
    assert head["ETag"] == etag  # the content did not change
    assert read(s3, bucket, "dst.txt") == data

    # REPLACE without headers: no user metadata, the default content type.
    s3.copy_object(
        Bucket=bucket,
        Key="bare.txt",
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
    )
    bare = s3.head_object(Bucket=bucket, Key="bare.txt")
    assert bare["Metadata"] == {}
    assert bare["ContentType"] == "binary/octet-stream"
    # The source is untouched.
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"] == {"colour": "red", "shape": "round"}


def test_unknown_metadata_directive(s3: Any, bucket: str, source: tuple[str, bytes, str]) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket,
            Key="dst",
            CopySource={"Bucket": bucket, "Key": source[0]},
            MetadataDirective="MERGE",
        )
    assert error_of(excinfo) == (400, "InvalidArgument")


def test_copy_across_buckets(s3: Any, bucket: str, source: tuple[str, bytes, str]) -> None:
    other = f"{bucket[:50]}-dst"
    s3.create_bucket(Bucket=other)
    key, data, etag = source
    result = s3.copy_object(
        Bucket=other, Key="deep/copy.txt", CopySource={"Bucket": bucket, "Key": key}
    )
    assert result["CopyObjectResult"]["ETag"] == etag
    assert read(s3, other, "deep/copy.txt") == data
    assert s3.head_object(Bucket=other, Key="deep/copy.txt")["Metadata"]["colour"] == "red"
    # Deleting the source leaves the copy intact (they share chunks, not lifetimes).
    s3.delete_object(Bucket=bucket, Key=key)
    assert read(s3, other, "deep/copy.txt") == data
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=other)["Contents"]] == ["deep/copy.txt"]


SPECIAL_KEYS = ["a b/c+d?e#f.txt", "ünï/cødé", "x%2Fy", "~tilde!*'()", "semi;colon&amp=1"]


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_keys_that_need_encoding(node: NodeProcess, s3: Any, bucket: str, key: str) -> None:
    data = f"body of {key}".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    # boto3 encodes a dict CopySource itself.
    s3.copy_object(Bucket=bucket, Key=f"copy/{key}", CopySource={"Bucket": bucket, "Key": key})
    assert read(s3, bucket, f"copy/{key}") == data
    # boto3 URL-encodes a string CopySource too.
    s3.copy_object(Bucket=bucket, Key=f"copy2/{key}", CopySource=f"{bucket}/{key}")
    assert read(s3, bucket, f"copy2/{key}") == data
    # The raw header, encoded by hand, with a leading "/" and every reserved byte escaped.
    for header in (f"/{bucket}/{quote(key, safe='')}", f"{bucket}/{quote(key, safe='/')}"):
        response = send(
            node.url,
            "PUT",
            f"/{bucket}/{quote('copy3/' + key, safe='/')}",
            headers={"x-amz-copy-source": header},
        )
        assert response.status_code == 200, response.text
        assert read(s3, bucket, f"copy3/{key}") == data
        s3.delete_object(Bucket=bucket, Key=f"copy3/{key}")


def test_copy_from_a_specific_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"version one", Metadata={"v": "1"})[
        "VersionId"
    ]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"version two")["VersionId"]

    old = s3.copy_object(
        Bucket=bucket, Key="old", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1}
    )
    assert old["CopySourceVersionId"] == v1
    assert old["VersionId"] not in (None, "null", v1, v2)
    assert old["CopyObjectResult"]["ETag"] == md5_etag(b"version one")
    assert read(s3, bucket, "old") == b"version one"
    assert s3.head_object(Bucket=bucket, Key="old")["Metadata"] == {"v": "1"}

    latest = s3.copy_object(Bucket=bucket, Key="new", CopySource={"Bucket": bucket, "Key": "k"})
    assert latest["CopySourceVersionId"] == v2
    assert read(s3, bucket, "new") == b"version two"

    # Restoring an old version onto the same key (no REPLACE needed with a version id).
    restored = s3.copy_object(
        Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1}
    )
    assert read(s3, bucket, "k") == b"version one"
    versions = s3.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == [restored["VersionId"], v2, v1]


def test_copy_of_delete_markers(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"data")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "k"})
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "k", "VersionId": marker}
        )
    assert error_of(excinfo) == (400, "InvalidRequest")
    s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1}
    )
    assert read(s3, bucket, "dst") == b"data"


@pytest.mark.parametrize(
    ("conditions", "succeeds"),
    [
        ({"CopySourceIfMatch": "etag"}, True),
        ({"CopySourceIfMatch": "other"}, False),
        ({"CopySourceIfMatch": "*"}, True),
        ({"CopySourceIfNoneMatch": "other"}, True),
        ({"CopySourceIfNoneMatch": "etag"}, False),
        ({"CopySourceIfModifiedSince": PAST}, True),
        ({"CopySourceIfModifiedSince": FUTURE}, False),
        ({"CopySourceIfUnmodifiedSince": FUTURE}, True),
        ({"CopySourceIfUnmodifiedSince": PAST}, False),
        # AWS's combination rules: if-match true wins over if-unmodified-since false...
        ({"CopySourceIfMatch": "etag", "CopySourceIfUnmodifiedSince": PAST}, True),
        # ...and if-none-match false fails even when if-modified-since holds.
        ({"CopySourceIfNoneMatch": "etag", "CopySourceIfModifiedSince": PAST}, False),
    ],
)
def test_copy_source_conditions(
    s3: Any,
    bucket: str,
    source: tuple[str, bytes, str],
    conditions: dict[str, Any],
    succeeds: bool,
) -> None:
    key, data, etag = source
    resolved = {
        name: {"etag": etag, "other": md5_etag(b"other")}.get(value, value)
        if isinstance(value, str)
        else value
        for name, value in conditions.items()
    }

    def copy() -> Any:
        return s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": key}, **resolved
        )

    if succeeds:
        assert copy()["CopyObjectResult"]["ETag"] == etag
        assert read(s3, bucket, "dst") == data
    else:
        with pytest.raises(ClientError) as excinfo:
            copy()
        assert error_of(excinfo) == (412, "PreconditionFailed")
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket=bucket, Key="dst")
        assert error_of(missing)[0] == 404


def test_self_copy_needs_replace(s3: Any, bucket: str, source: tuple[str, bytes, str]) -> None:
    key, data, etag = source
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key})
    assert error_of(excinfo) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            MetadataDirective="COPY",
        )
    assert error_of(excinfo) == (400, "InvalidRequest")

    before = s3.head_object(Bucket=bucket, Key=key)
    result = s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType="text/markdown",
        Metadata={"colour": "blue"},
    )
    assert result["CopyObjectResult"]["ETag"] == etag
    after = s3.head_object(Bucket=bucket, Key=key)
    assert after["ContentType"] == "text/markdown"
    assert after["Metadata"] == {"colour": "blue"}
    assert after["ETag"] == etag
    assert after["LastModified"] >= before["LastModified"]
    assert read(s3, bucket, key) == data
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_copy_errors(s3: Any, bucket: str, source: tuple[str, bytes, str]) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "missing"})
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": "no-such-bucket-copy", "Key": "k"}
        )
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket="no-such-bucket-copy", Key="dst", CopySource={"Bucket": bucket, "Key": source[0]}
        )
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}")
    assert error_of(excinfo) == (400, "InvalidArgument")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [source[0]]


def test_copy_of_a_multipart_object(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(3 * MiB + 5)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ContentType="x/mpu")[
        "UploadId"
    ]
    etags = [
        s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload_id, PartNumber=n, Body=d)["ETag"]
        for n, d in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mpu",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    result = s3.copy_object(
        Bucket=bucket, Key="mpu-copy", CopySource={"Bucket": bucket, "Key": "mpu"}
    )
    # Either S3 ETag form is acceptable for a copy; it must describe these bytes.
    whole = b"".join(parts)
    assert result["CopyObjectResult"]["ETag"] in (multipart_etag(parts), md5_etag(whole))
    got = s3.get_object(Bucket=bucket, Key="mpu-copy")
    assert got["Body"].read() == whole
    assert got["ETag"] == result["CopyObjectResult"]["ETag"]
    assert got["ContentType"] == "x/mpu"
    ranged = read(s3, bucket, "mpu-copy", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 3}")
    assert ranged == whole[5 * MiB - 3 : 5 * MiB + 4]
