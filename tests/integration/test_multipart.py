"""Multipart uploads through boto3 against a real node: the whole API, its errors,
UploadPartCopy, boto3's transfer manager, presigned parts, interruption and SIGKILL.

Every multipart ETag is recomputed here from the bytes sent (MD5 of the parts' binary MD5s,
then ``-N``), never taken from the server.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3.s3.transfer
import httpx
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import (
    MiB,
    error_of,
    headers_of,
    md5_etag,
    multipart_etag,
    send,
    xml_code,
)

PART = 5 * MiB  # the minimum size of every part but the last


# ---- helpers --------------------------------------------------------------------------------


def create(s3: Any, bucket: str, key: str, **extra: Any) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"])


def upload(s3: Any, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
    response = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
    )
    return str(response["ETag"])


def complete(
    s3: Any, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
) -> dict[str, Any]:
    result: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
    )
    return result


def upload_all(s3: Any, bucket: str, key: str, parts: list[bytes], **extra: Any) -> dict[str, Any]:
    """Create, upload ``parts`` as parts 1..N, complete; return the completion response."""
    upload_id = create(s3, bucket, key, **extra)
    etags = [upload(s3, bucket, key, upload_id, n, data) for n, data in enumerate(parts, 1)]
    return complete(s3, bucket, key, upload_id, list(enumerate(etags, 1)))


def read(s3: Any, bucket: str, key: str, **extra: Any) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


def listed_keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def upload_ids(s3: Any, bucket: str, **extra: Any) -> list[tuple[str, str]]:
    response = s3.list_multipart_uploads(Bucket=bucket, **extra)
    return [(u["Key"], u["UploadId"]) for u in response.get("Uploads", [])]


def assert_absent(s3: Any, bucket: str, key: str) -> None:
    """No object and no version of ``key`` is visible anywhere."""
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key=key)
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as head_info:
        s3.head_object(Bucket=bucket, Key=key)
    assert error_of(head_info)[0] == 404
    assert key not in listed_keys(s3, bucket)
    versions = s3.list_object_versions(Bucket=bucket)
    assert key not in [v["Key"] for v in versions.get("Versions", [])]
    assert key not in [v["Key"] for v in versions.get("DeleteMarkers", [])]


@pytest.fixture(scope="module")
def source_data() -> bytes:
    """9 MiB + 100 B: three 4 MiB chunks on the node, the last one short."""
    return os.urandom(9 * MiB + 100)


# ---- create / upload / complete -------------------------------------------------------------


def test_complete_concatenates_parts_with_multipart_etag(s3: Any, bucket: str) -> None:
    parts = [os.urandom(PART + 3), os.urandom(PART), os.urandom(1234)]
    done = upload_all(s3, bucket, "dir/big.bin", parts)
    expected_etag = multipart_etag(parts)
    assert done["ETag"] == expected_etag
    assert done["Bucket"] == bucket and done["Key"] == "dir/big.bin"
    assert "VersionId" not in done  # unversioned bucket

    got = s3.get_object(Bucket=bucket, Key="dir/big.bin")
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == expected_etag
    assert got["ContentLength"] == sum(map(len, parts))
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ETag"] == expected_etag
    assert head["ContentLength"] == sum(map(len, parts))
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [
        ("dir/big.bin", expected_etag, sum(map(len, parts)))
    ]
    # The upload is gone once completed.
    assert upload_ids(s3, bucket) == []


def test_single_small_part_and_create_time_headers_reach_the_object(s3: Any, bucket: str) -> None:
    data = b"only part, smaller than 5 MiB is fine when last"
    done = upload_all(
        s3,
        bucket,
        "meta.txt",
        [data],
        ContentType="text/x-lakenode",
        ContentDisposition='attachment; filename="m.txt"',
        CacheControl="max-age=5",
        Metadata={"colour": "green", "Owner": "bob"},
    )
    assert done["ETag"] == multipart_etag([data])
    head = s3.head_object(Bucket=bucket, Key="meta.txt")
    assert head["ContentType"] == "text/x-lakenode"
    assert head["ContentDisposition"] == 'attachment; filename="m.txt"'
    assert head["CacheControl"] == "max-age=5"
    assert head["Metadata"] == {"colour": "green", "owner": "bob"}
    assert head["ETag"].endswith('-1"')
    # Internal bookkeeping headers never leak to clients.
    assert not any(name.startswith("x-lakenode") for name in headers_of(head))
    assert read(s3, bucket, "meta.txt") == data


def test_default_content_type_of_completed_object(s3: Any, bucket: str) -> None:
    upload_all(s3, bucket, "plain", [b"x"])
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"


def test_reuploading_a_part_number_replaces_it(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "k")
    first, second = os.urandom(PART), os.urandom(PART + 1)
    old_etag = upload(s3, bucket, "k", upload_id, 1, first)
    new_etag = upload(s3, bucket, "k", upload_id, 1, second)
    assert old_etag == md5_etag(first) and new_etag == md5_etag(second)
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, new_etag, PART + 1)]
    tail = b"tail"
    tail_etag = upload(s3, bucket, "k", upload_id, 2, tail)
    with pytest.raises(ClientError) as excinfo:
        complete(s3, bucket, "k", upload_id, [(1, old_etag), (2, tail_etag)])
    assert error_of(excinfo) == (400, "InvalidPart")
    done = complete(s3, bucket, "k", upload_id, [(1, new_etag), (2, tail_etag)])
    assert done["ETag"] == multipart_etag([second, tail])
    assert read(s3, bucket, "k") == second + tail


def test_completion_may_skip_part_numbers(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "gaps")
    one, three, five = os.urandom(PART), os.urandom(PART), b"end"
    e1 = upload(s3, bucket, "gaps", upload_id, 1, one)
    upload(s3, bucket, "gaps", upload_id, 2, os.urandom(100))  # uploaded, left out
    e3 = upload(s3, bucket, "gaps", upload_id, 3, three)
    e5 = upload(s3, bucket, "gaps", upload_id, 5, five)
    done = complete(s3, bucket, "gaps", upload_id, [(1, e1), (3, e3), (5, e5)])
    assert done["ETag"] == multipart_etag([one, three, five])
    assert read(s3, bucket, "gaps") == one + three + five


def test_versioned_completion_returns_version_id(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="v", Body=b"before")
    done = upload_all(s3, bucket, "v", [b"after"])
    version_id = done["VersionId"]
    assert version_id and version_id != "null"
    assert s3.head_object(Bucket=bucket, Key="v")["VersionId"] == version_id
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["VersionId"] == version_id, v["IsLatest"]) for v in versions] == [
        (True, True),
        (False, False),
    ]


# ---- ListParts ------------------------------------------------------------------------------


def test_list_parts_pages_with_marker_and_max_parts(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "parts")
    bodies = {n: os.urandom(100 + n) for n in (1, 2, 3, 5, 8, 9, 10)}
    for number, data in bodies.items():
        upload(s3, bucket, "parts", upload_id, number, data)

    full = s3.list_parts(Bucket=bucket, Key="parts", UploadId=upload_id)
    assert full["IsTruncated"] is False
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in full["Parts"]] == [
        (n, md5_etag(d), len(d)) for n, d in bodies.items()
    ]
    assert full["Initiator"]["DisplayName"] and full["Owner"]["ID"]

    seen: list[int] = []
    marker = 0
    pages = 0
    while True:
        page = s3.list_parts(
            Bucket=bucket, Key="parts", UploadId=upload_id, MaxParts=3, PartNumberMarker=marker
        )
        pages += 1
        numbers = [p["PartNumber"] for p in page["Parts"]]
        assert len(numbers) <= 3
        assert page["MaxParts"] == 3
        assert page.get("PartNumberMarker", 0) == marker
        seen += numbers
        if not page["IsTruncated"]:
            break
        assert page["NextPartNumberMarker"] == numbers[-1]
        marker = page["NextPartNumberMarker"]
    assert seen == sorted(bodies)
    assert pages == 3

    # A marker past the last part: an empty, complete page.
    empty = s3.list_parts(Bucket=bucket, Key="parts", UploadId=upload_id, PartNumberMarker=10)
    assert empty.get("Parts", []) == [] and empty["IsTruncated"] is False
    # boto3's paginator follows NextPartNumberMarker too.
    paginated = [
        p["PartNumber"]
        for page in s3.get_paginator("list_parts").paginate(
            Bucket=bucket, Key="parts", UploadId=upload_id, PaginationConfig={"PageSize": 2}
        )
        for p in page.get("Parts", [])
    ]
    assert paginated == sorted(bodies)


# ---- ListMultipartUploads -------------------------------------------------------------------

UPLOAD_KEYS = ["a/1", "a/2", "b", "b", "b/x", "c/d/e", "c/f", "d", "é/1"]


@pytest.fixture
def uploads(s3: Any, bucket: str) -> list[tuple[str, str]]:
    """Uploads in progress (two on key "b"), in the node's full-listing order."""
    created = [(key, create(s3, bucket, key)) for key in UPLOAD_KEYS]
    listed = upload_ids(s3, bucket)
    assert sorted(listed) == sorted(created)
    assert [k for k, _ in listed] == sorted(UPLOAD_KEYS, key=lambda k: k.encode())
    return listed


def page_through_uploads(
    s3: Any, bucket: str, max_uploads: int, **extra: Any
) -> tuple[list[tuple[str, str]], list[str], int]:
    """Every upload and common prefix by following the Next*Marker fields by hand."""
    found: list[tuple[str, str]] = []
    prefixes: list[str] = []
    markers: dict[str, str] = {}
    pages = 0
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=max_uploads, **markers, **extra)
        pages += 1
        entries = [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        common = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert len(entries) + len(common) <= max_uploads
        found += entries
        prefixes += common
        if not page["IsTruncated"]:
            return found, prefixes, pages
        assert pages < 50, "listing does not end"
        markers = {"KeyMarker": page["NextKeyMarker"]}
        if page.get("NextUploadIdMarker"):
            markers["UploadIdMarker"] = page["NextUploadIdMarker"]


@pytest.mark.parametrize("max_uploads", [1, 2, 3, 1000])
def test_list_multipart_uploads_pages_exactly_once(
    s3: Any, bucket: str, uploads: list[tuple[str, str]], max_uploads: int
) -> None:
    found, prefixes, pages = page_through_uploads(s3, bucket, max_uploads)
    assert found == uploads
    assert prefixes == []
    assert pages == -(-len(uploads) // max_uploads)  # no empty trailing page


def test_list_multipart_uploads_prefix_and_delimiter(
    s3: Any, bucket: str, uploads: list[tuple[str, str]]
) -> None:
    top = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [(u["Key"], u["UploadId"]) for u in top["Uploads"]] == [
        entry for entry in uploads if entry[0] in ("b", "d")
    ]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/", "c/", "é/"]

    under_c = s3.list_multipart_uploads(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [u["Key"] for u in under_c.get("Uploads", [])] == ["c/f"]
    assert [p["Prefix"] for p in under_c["CommonPrefixes"]] == ["c/d/"]
    assert under_c["Prefix"] == "c/"

    flat = s3.list_multipart_uploads(Bucket=bucket, Prefix="b")
    assert [u["Key"] for u in flat["Uploads"]] == ["b", "b", "b/x"]

    for max_uploads in (1, 2):
        found, prefixes, _ = page_through_uploads(s3, bucket, max_uploads, Delimiter="/")
        assert [k for k, _ in found] == ["b", "b", "d"]
        assert prefixes == ["a/", "b/", "c/", "é/"]


def test_list_multipart_uploads_key_and_upload_id_markers(
    s3: Any, bucket: str, uploads: list[tuple[str, str]]
) -> None:
    # key-marker alone: uploads of keys after it (both "b" uploads skipped).
    after_b = upload_ids(s3, bucket, KeyMarker="b")
    assert after_b == [entry for entry in uploads if entry[0].encode() > b"b"]
    # key-marker + upload-id-marker: the rest of that key's uploads, then later keys.
    b_uploads = [entry for entry in uploads if entry[0] == "b"]
    after_first_b = upload_ids(s3, bucket, KeyMarker="b", UploadIdMarker=b_uploads[0][1])
    assert after_first_b == [b_uploads[1], *after_b]
    after_last_b = upload_ids(s3, bucket, KeyMarker="b", UploadIdMarker=b_uploads[1][1])
    assert after_last_b == after_b
    # upload-id-marker without a key-marker is ignored.
    assert upload_ids(s3, bucket, UploadIdMarker=b_uploads[0][1]) == uploads


def test_list_multipart_uploads_url_encoding(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "sp ace/ü+&")
    # boto3 asks for encoding-type=url and decodes the keys back.
    assert upload_ids(s3, bucket) == [("sp ace/ü+&", upload_id)]
    raw = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in raw["CommonPrefixes"]] == ["sp ace/"]


# ---- abort and the interrupted upload -------------------------------------------------------


def test_abort_discards_parts_and_upload(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "aborted")
    etag = upload(s3, bucket, "aborted", upload_id, 1, os.urandom(PART))
    response = s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=upload_id)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204

    assert_absent(s3, bucket, "aborted")
    assert upload_ids(s3, bucket) == []
    calls = [
        lambda: upload(s3, bucket, "aborted", upload_id, 2, b"late"),
        lambda: s3.list_parts(Bucket=bucket, Key="aborted", UploadId=upload_id),
        lambda: complete(s3, bucket, "aborted", upload_id, [(1, etag)]),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=upload_id),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == (404, "NoSuchUpload")
    assert_absent(s3, bucket, "aborted")


def test_uploaded_parts_never_completed_leave_no_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="other", Body=b"visible")
    upload_id = create(s3, bucket, "pending")
    upload(s3, bucket, "pending", upload_id, 1, os.urandom(PART))
    upload(s3, bucket, "pending", upload_id, 2, b"last")
    assert_absent(s3, bucket, "pending")
    assert listed_keys(s3, bucket) == ["other"]
    v1 = s3.list_objects(Bucket=bucket)
    assert [o["Key"] for o in v1["Contents"]] == ["other"]
    # The upload itself is listed, with its parts, until completed or aborted.
    assert upload_ids(s3, bucket) == [("pending", upload_id)]
    assert len(s3.list_parts(Bucket=bucket, Key="pending", UploadId=upload_id)["Parts"]) == 2


def test_pending_upload_does_not_replace_existing_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    upload_id = create(s3, bucket, "k")
    upload(s3, bucket, "k", upload_id, 1, b"replacement")
    assert read(s3, bucket, "k") == b"original"
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    assert read(s3, bucket, "k") == b"original"


# ---- errors ---------------------------------------------------------------------------------


def test_entity_too_small(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "small")
    e1 = upload(s3, bucket, "small", upload_id, 1, os.urandom(PART - 1))
    e2 = upload(s3, bucket, "small", upload_id, 2, b"x")
    with pytest.raises(ClientError) as excinfo:
        complete(s3, bucket, "small", upload_id, [(1, e1), (2, e2)])
    assert error_of(excinfo) == (400, "EntityTooSmall")
    # The upload survives a refused completion; exactly 5 MiB is enough.
    e1 = upload(s3, bucket, "small", upload_id, 1, os.urandom(PART))
    complete(s3, bucket, "small", upload_id, [(1, e1), (2, e2)])
    assert s3.head_object(Bucket=bucket, Key="small")["ContentLength"] == PART + 1


def test_invalid_part_wrong_etag_or_missing_part(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "k")
    e1 = upload(s3, bucket, "k", upload_id, 1, os.urandom(PART))
    e2 = upload(s3, bucket, "k", upload_id, 2, b"end")
    wrong = md5_etag(b"something else")
    for parts in ([(1, wrong), (2, e2)], [(1, e1), (3, e2)], [(1, e1), (2, e2), (4, e2)]):
        with pytest.raises(ClientError) as excinfo:
            complete(s3, bucket, "k", upload_id, parts)
        assert error_of(excinfo) == (400, "InvalidPart"), parts
    assert_absent(s3, bucket, "k")
    # ETags are accepted with or without quotes.
    complete(s3, bucket, "k", upload_id, [(1, e1.strip('"')), (2, e2)])
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == PART + 3


def test_invalid_part_order(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "k")
    e1 = upload(s3, bucket, "k", upload_id, 1, os.urandom(PART))
    e2 = upload(s3, bucket, "k", upload_id, 2, os.urandom(PART))
    for parts in ([(2, e2), (1, e1)], [(1, e1), (1, e1)]):
        with pytest.raises(ClientError) as excinfo:
            complete(s3, bucket, "k", upload_id, parts)
        assert error_of(excinfo) == (400, "InvalidPartOrder"), parts
    assert_absent(s3, bucket, "k")


def test_no_such_upload_for_a_bogus_upload_id(s3: Any, bucket: str) -> None:
    real = create(s3, bucket, "k")
    bogus = "bogus-upload-id"
    calls = [
        lambda: complete(s3, bucket, "k", bogus, [(1, md5_etag(b"x"))]),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=bogus),
        lambda: s3.list_parts(Bucket=bucket, Key="k", UploadId=bogus),
        lambda: upload(s3, bucket, "k", bogus, 1, b"x"),
        # A real upload id under another key is not that key's upload.
        lambda: upload(s3, bucket, "other-key", real, 1, b"x"),
        lambda: s3.list_parts(Bucket=bucket, Key="other-key", UploadId=real),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == (404, "NoSuchUpload")
    assert upload_ids(s3, bucket) == [("k", real)]


def test_no_such_bucket_for_multipart_calls(s3: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.create_multipart_upload(Bucket="no-such-bucket-mpu", Key="k")
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        s3.list_multipart_uploads(Bucket="no-such-bucket-mpu")
    assert error_of(excinfo) == (404, "NoSuchBucket")


@pytest.mark.parametrize("number", ["0", "10001", "-1", "abc"])
def test_part_number_out_of_range(node: NodeProcess, s3: Any, bucket: str, number: str) -> None:
    upload_id = create(s3, bucket, "k")
    response = send(
        node.url, "PUT", f"/{bucket}/k", f"partNumber={number}&uploadId={upload_id}", body=b"x"
    )
    assert response.status_code == 400, response.text
    assert xml_code(response) == "InvalidArgument"
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id).get("Parts", []) == []


def test_part_number_limits_through_boto3(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "k")
    for number in (0, 10001):
        with pytest.raises(ClientError) as excinfo:
            upload(s3, bucket, "k", upload_id, number, b"x")
        assert error_of(excinfo) == (400, "InvalidArgument")
    upload(s3, bucket, "k", upload_id, 10000, b"highest")
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [p["PartNumber"] for p in parts] == [10000]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<CompleteMultipartUpload>",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<Other><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Other>",
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
    ],
)
def test_malformed_completion_body(node: NodeProcess, s3: Any, bucket: str, body: bytes) -> None:
    upload_id = create(s3, bucket, "k")
    upload(s3, bucket, "k", upload_id, 1, b"data")
    response = send(node.url, "POST", f"/{bucket}/k", f"uploadId={upload_id}", body=body)
    assert response.status_code == 400, response.text
    assert xml_code(response) == "MalformedXML"
    assert_absent(s3, bucket, "k")
    assert upload_ids(s3, bucket) == [("k", upload_id)]


def test_empty_part_list_through_boto3_is_malformed(s3: Any, bucket: str) -> None:
    upload_id = create(s3, bucket, "k")
    with pytest.raises(ClientError) as excinfo:
        complete(s3, bucket, "k", upload_id, [])
    assert error_of(excinfo) == (400, "MalformedXML")


# ---- UploadPartCopy -------------------------------------------------------------------------


def test_upload_part_copy_whole_and_ranges_across_chunk_boundaries(
    s3: Any, bucket: str, source_data: bytes
) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=source_data)
    source = {"Bucket": bucket, "Key": "src"}
    upload_id = create(s3, bucket, "dst")
    whole = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=source
    )["CopyPartResult"]
    assert whole["ETag"] == md5_etag(source_data)
    assert isinstance(whole["LastModified"], datetime)

    ranges = [
        (4 * MiB - 100, 9 * MiB + 50),  # starts inside chunk 1, spans chunk 2, ends in 3
        (8 * MiB - 7, 8 * MiB + 9),  # a short last part cut out across one boundary
    ]
    pieces = [source_data]
    etags = [whole["ETag"]]
    for number, (first, last) in enumerate(ranges, 2):
        result = s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={first}-{last}",
        )["CopyPartResult"]
        piece = source_data[first : last + 1]
        assert result["ETag"] == md5_etag(piece)
        pieces.append(piece)
        etags.append(result["ETag"])

    listed = s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (n, len(piece), md5_etag(piece)) for n, piece in enumerate(pieces, 1)
    ]
    done = complete(s3, bucket, "dst", upload_id, list(enumerate(etags, 1)))
    assert done["ETag"] == multipart_etag(pieces)
    assert read(s3, bucket, "dst") == b"".join(pieces)
    # Reading a range of the copied object that straddles the copied parts' seams.
    seam = len(source_data)
    ranged = read(s3, bucket, "dst", Range=f"bytes={seam - 10}-{seam + 10}")
    assert ranged == (b"".join(pieces))[seam - 10 : seam + 11]
    # The source is untouched.
    assert read(s3, bucket, "src") == source_data


def test_upload_part_copy_mixed_with_uploaded_parts_and_other_bucket(
    s3: Any, bucket: str, source_data: bytes
) -> None:
    other = f"{bucket[:50]}-src"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="a b/ü+.bin", Body=source_data)
    upload_id = create(s3, bucket, "mixed")
    direct = os.urandom(PART)
    e1 = upload(s3, bucket, "mixed", upload_id, 1, direct)
    e2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="mixed",
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": other, "Key": "a b/ü+.bin"},
        CopySourceRange="bytes=0-99",
    )["CopyPartResult"]["ETag"]
    complete(s3, bucket, "mixed", upload_id, [(1, e1), (2, e2)])
    assert read(s3, bucket, "mixed") == direct + source_data[:100]


def test_upload_part_copy_from_a_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old, new = os.urandom(PART + 10), os.urandom(1000)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=old)["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=new)
    upload_id = create(s3, bucket, "dst")
    response = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1},
    )
    assert response["CopySourceVersionId"] == v1
    assert response["CopyPartResult"]["ETag"] == md5_etag(old)
    latest = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
    )
    assert latest["CopyPartResult"]["ETag"] == md5_etag(new)
    complete(
        s3,
        bucket,
        "dst",
        upload_id,
        [(1, response["CopyPartResult"]["ETag"]), (2, latest["CopyPartResult"]["ETag"])],
    )
    assert read(s3, bucket, "dst") == old + new

    # A deleted source (delete marker latest) cannot be copied without a version id.
    s3.delete_object(Bucket=bucket, Key="src")
    second = create(s3, bucket, "dst2")
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst2",
            UploadId=second,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
        )
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst2",
            UploadId=second,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src", "VersionId": "0000000000000000nope"},
        )
    assert error_of(excinfo)[0] in (400, 404)


def test_upload_part_copy_source_conditions(s3: Any, bucket: str) -> None:
    data = b"conditional source"
    etag = s3.put_object(Bucket=bucket, Key="src", Body=data)["ETag"]
    upload_id = create(s3, bucket, "dst")
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)

    def copy_part(**conditions: Any) -> Any:
        return s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            **conditions,
        )

    failing = [
        {"CopySourceIfMatch": md5_etag(b"other")},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for conditions in failing:
        with pytest.raises(ClientError) as excinfo:
            copy_part(**conditions)
        assert error_of(excinfo) == (412, "PreconditionFailed"), conditions
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload_id).get("Parts", []) == []

    passing = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": md5_etag(b"other")},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
    ]
    for conditions in passing:
        assert copy_part(**conditions)["CopyPartResult"]["ETag"] == md5_etag(data), conditions


def test_upload_part_copy_bad_ranges_and_sources(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload_id = create(s3, bucket, "dst")

    def copy_part(source: dict[str, str], range_header: str | None = None) -> Any:
        extra = {} if range_header is None else {"CopySourceRange": range_header}
        return s3.upload_part_copy(
            Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=source, **extra
        )

    src = {"Bucket": bucket, "Key": "src"}
    for beyond in ("bytes=0-10", "bytes=10-10", "bytes=0-21"):
        with pytest.raises(ClientError) as excinfo:
            copy_part(src, beyond)
        assert error_of(excinfo) == (416, "InvalidRange"), beyond
    for malformed in (
        "bytes=0-",
        "0-3",
        "bytes=-3",
        "bytes=0-1,2-3",
        "bytes=5-2",
        "bytes=0",
        "bytes=0-bar",
    ):
        with pytest.raises(ClientError) as excinfo:
            copy_part(src, malformed)
        assert error_of(excinfo) == (400, "InvalidArgument"), malformed
    assert copy_part(src, "bytes=9-9")["CopyPartResult"]["ETag"] == md5_etag(b"9")
    with pytest.raises(ClientError) as excinfo:
        copy_part({"Bucket": bucket, "Key": "missing"})
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        copy_part({"Bucket": "no-such-bucket-upc", "Key": "src"})
    assert error_of(excinfo) == (404, "NoSuchBucket")


# ---- boto3's transfer manager and presigned parts -------------------------------------------


def test_transfer_manager_multipart_round_trip(s3: Any, bucket: str, tmp_path: Path) -> None:
    config = boto3.s3.transfer.TransferConfig(
        multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=3
    )
    source = tmp_path / "up.bin"
    data = os.urandom(2 * PART + 777)
    source.write_bytes(data)
    s3.upload_file(str(source), bucket, "via/upload_file", Config=config)
    head = s3.head_object(Bucket=bucket, Key="via/upload_file")
    assert head["ETag"] == multipart_etag([data[:PART], data[PART : 2 * PART], data[2 * PART :]])

    with source.open("rb") as handle:
        s3.upload_fileobj(handle, bucket, "via/upload_fileobj", Config=config)
    assert s3.head_object(Bucket=bucket, Key="via/upload_fileobj")["ETag"] == head["ETag"]

    target = tmp_path / "down.bin"
    s3.download_file(bucket, "via/upload_file", str(target), Config=config)  # ranged GETs
    assert target.read_bytes() == data
    assert upload_ids(s3, bucket) == []


def test_presigned_upload_part(node: NodeProcess, bucket: str) -> None:
    client = make_client(node.url, signature_version="s3v4")
    upload_id = create(client, bucket, "presigned")
    parts = [os.urandom(PART), b"presigned last part"]
    etags = []
    for number, data in enumerate(parts, 1):
        url = client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": "presigned",
                "UploadId": upload_id,
                "PartNumber": number,
            },
            ExpiresIn=300,
        )
        assert "X-Amz-Signature=" in url
        response = httpx.put(url, content=data, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == md5_etag(data)
        etags.append(response.headers["etag"])
    # A tampered presigned URL is refused.
    bad = client.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": "presigned", "UploadId": upload_id, "PartNumber": 3},
        ExpiresIn=300,
    ).replace("partNumber=3", "partNumber=4")
    refused = httpx.put(bad, content=b"x", timeout=30)
    assert refused.status_code == 403
    done = complete(client, bucket, "presigned", upload_id, list(enumerate(etags, 1)))
    assert done["ETag"] == multipart_etag(parts)
    assert read(client, bucket, "presigned") == b"".join(parts)


# ---- crashes (acceptance 4) -----------------------------------------------------------------


@pytest.fixture
def crash_node(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data")
    node.start()
    yield node
    node.stop()


def test_acknowledged_parts_survive_sigkill(crash_node: NodeProcess) -> None:
    s3 = make_client(crash_node.url, retries={"max_attempts": 1})
    s3.create_bucket(Bucket="mpu-crash")
    parts = [os.urandom(PART), os.urandom(PART + 1), os.urandom(123)]
    upload_id = create(s3, "mpu-crash", "k", ContentType="application/x-crash")
    etags = [upload(s3, "mpu-crash", "k", upload_id, n, d) for n, d in enumerate(parts, 1)]
    assert etags == [md5_etag(d) for d in parts]

    crash_node.kill()
    crash_node.start()

    listed = s3.list_parts(Bucket="mpu-crash", Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, md5_etag(d), len(d)) for n, d in enumerate(parts, 1)
    ]
    assert upload_ids(s3, "mpu-crash") == [("k", upload_id)]
    assert_absent(s3, "mpu-crash", "k")
    done = complete(s3, "mpu-crash", "k", upload_id, list(enumerate(etags, 1)))
    assert done["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket="mpu-crash", Key="k")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentType"] == "application/x-crash"

    # The completed object survives a second kill too.
    crash_node.kill()
    crash_node.start()
    assert read(s3, "mpu-crash", "k") == b"".join(parts)
    assert upload_ids(s3, "mpu-crash") == []


COMPLETIONS = 40
COMPLETERS = 4


def test_sigkill_during_completions_leaves_objects_whole_or_absent(
    crash_node: NodeProcess,
) -> None:
    bucket = "mpu-complete-crash"
    s3 = make_client(crash_node.url, retries={"max_attempts": 1})
    s3.create_bucket(Bucket=bucket)
    base = os.urandom(PART)
    s3.put_object(Bucket=bucket, Key="base", Body=base)
    # Every upload: a 5 MiB first part copied from "base" (no data written) + its own tail.
    expected: dict[str, tuple[str, list[tuple[int, str]], list[bytes]]] = {}
    for index in range(COMPLETIONS):
        key = f"obj/{index:02d}"
        upload_id = create(s3, bucket, key)
        first = s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "base"},
        )["CopyPartResult"]["ETag"]
        tail = os.urandom(1000 + index)
        second = upload(s3, bucket, key, upload_id, 2, tail)
        expected[key] = (upload_id, [(1, first), (2, second)], [base, tail])

    acked: list[str] = []
    failures: list[str] = []
    keys = list(expected)

    def completer(mine: list[str]) -> None:
        client = make_client(crash_node.url, retries={"max_attempts": 1})
        for key in mine:
            upload_id, parts, _data = expected[key]
            try:
                complete(client, bucket, key, upload_id, parts)
            except BotoCoreError:
                return  # the node died: this completion's outcome is unknown
            except ClientError as exc:
                failures.append(f"{key}: {exc}")
                return
            acked.append(key)

    # Several completers, so that completions are in flight (and share commits) at the kill.
    threads = [
        threading.Thread(target=completer, args=(keys[i::COMPLETERS],), daemon=True)
        for i in range(COMPLETERS)
    ]
    kill_after = random.randint(3, COMPLETIONS // 2)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < kill_after and time.monotonic() < deadline:
        time.sleep(0.0005)
    crash_node.kill()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    assert len(acked) >= kill_after, "the completions never got going"
    assert len(acked) < COMPLETIONS, "every completion finished before the kill"

    crash_node.start()
    present = []
    for key, (upload_id, parts, data) in expected.items():
        try:
            got = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "NoSuchKey", key
            assert key not in acked, f"{key}: acknowledged completion lost"
            # Not completed: the upload and its parts are all still there; finish it now.
            listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
            assert [(p["PartNumber"], p["ETag"]) for p in listed] == parts, key
            complete(s3, bucket, key, upload_id, parts)
            assert read(s3, bucket, key) == b"".join(data), key
            continue
        present.append(key)
        body = got["Body"].read()
        assert len(body) == sum(map(len, data)), f"{key}: partial object"
        assert body == b"".join(data), f"{key}: wrong bytes"
        assert got["ETag"] == multipart_etag(data), key
        # Completed means the upload is gone.
        with pytest.raises(ClientError) as excinfo:
            s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
        assert error_of(excinfo) == (404, "NoSuchUpload")
    assert set(acked) <= set(present)
    print(
        f"\nkill after {kill_after}: {len(acked)} completions acknowledged, {len(present)} objects "
        f"present after the restart, {COMPLETIONS - len(present)} completed afterwards"
    )
    listed_now = {
        o["Key"]: o["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="obj/")
        for o in page.get("Contents", [])
    }
    assert listed_now == {key: sum(map(len, d)) for key, (_u, _p, d) in expected.items()}
    assert upload_ids(s3, bucket) == []
