"""Multipart behaviour clients rely on: a repeated completion (a retry after a lost answer),
GetObject/HeadObject ?partNumber=, a part uploaded again, UploadPartCopy ranges."""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import MiB, error_of, md5_etag, multipart_etag, send, xml_code
from tests.integration.test_multipart import complete, create, upload

PART = 5 * MiB


def test_repeated_completion_answers_as_the_first(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    parts = [os.urandom(MiB)]
    upload_id = create(s3, bucket, "k")
    etags = [upload(s3, bucket, "k", upload_id, n, data) for n, data in enumerate(parts, 1)]
    listed = list(enumerate(etags, 1))
    first = complete(s3, bucket, "k", upload_id, listed)
    again = complete(s3, bucket, "k", upload_id, listed)
    assert again["ETag"] == first["ETag"] == multipart_etag(parts)
    assert again["VersionId"] == first["VersionId"]
    versions = s3.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == [first["VersionId"]]  # nothing written again
    s3.put_object(Bucket=bucket, Key="k", Body=b"newer")
    # Still the first answer, even with a condition the key would now refuse.
    retried = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in listed]},
        IfNoneMatch="*",
    )
    assert (retried["ETag"], retried["VersionId"]) == (first["ETag"], first["VersionId"])


def test_completion_with_other_parts_after_completion_is_no_such_upload(
    s3: Any, bucket: str
) -> None:
    upload_id = create(s3, bucket, "k")
    etags = [upload(s3, bucket, "k", upload_id, n, os.urandom(1000)) for n in (1, 2)]
    complete(s3, bucket, "k", upload_id, [(2, etags[1])])
    for other in ([(1, etags[0])], [(2, etags[0])], [(1, etags[0]), (2, etags[1])]):
        with pytest.raises(ClientError) as refused:
            complete(s3, bucket, "k", upload_id, other)
        assert error_of(refused) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as listing:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    assert error_of(listing) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as elsewhere:
        complete(s3, bucket, "other", upload_id, [(2, etags[1])])
    assert error_of(elsewhere) == (404, "NoSuchUpload")


def test_get_and_head_part_of_a_multipart_object(node: NodeProcess, s3: Any, bucket: str) -> None:
    parts = [os.urandom(PART), os.urandom(PART), b"last part"]
    upload_id = create(s3, bucket, "k")
    etags = [upload(s3, bucket, "k", upload_id, n, data) for n, data in enumerate(parts, 1)]
    complete(s3, bucket, "k", upload_id, list(enumerate(etags, 1)))
    total = sum(map(len, parts))
    offset = 0
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="k", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == data
        assert got["PartsCount"] == len(parts)
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{total}"
        assert got["ETag"] == multipart_etag(parts)
        head = s3.head_object(Bucket=bucket, Key="k", PartNumber=number)
        assert (head["ContentLength"], head["PartsCount"]) == (len(data), len(parts))
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        offset += len(data)
    beyond = send(node.url, "GET", f"/{bucket}/k", "partNumber=4")
    assert (beyond.status_code, xml_code(beyond)) == (416, "InvalidPartNumber")
    both = send(node.url, "GET", f"/{bucket}/k", "partNumber=1", headers={"Range": "bytes=0-1"})
    assert (both.status_code, xml_code(both)) == (400, "InvalidRequest")
    for bad in ("0", "10001", "x"):
        refused = send(node.url, "GET", f"/{bucket}/k", f"partNumber={bad}")
        assert (refused.status_code, xml_code(refused)) == (400, "InvalidArgument")


def test_part_one_of_an_object_put_whole_is_the_object(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="k", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert (got["Body"].read(), got["ContentRange"]) == (b"0123456789", "bytes 0-9/10")
    assert "PartsCount" not in got
    head = send(node.url, "HEAD", f"/{bucket}/k", "partNumber=1")
    assert (head.status_code, head.headers["content-length"]) == (206, "10")
    beyond = send(node.url, "GET", f"/{bucket}/k", "partNumber=2")
    assert (beyond.status_code, xml_code(beyond)) == (400, "InvalidPart")


def test_part_upload_committed_last_wins_over_one_that_started_later(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    upload_id = create(s3, bucket, "k")
    slow_body = [b"s" * 1000] * 5
    fast_started = threading.Event()
    fast_done = threading.Event()

    def trickle() -> Iterator[bytes]:
        for number, piece in enumerate(slow_body):
            if number == 1:
                fast_started.set()  # the slow upload is under way: let the fast one run
                assert fast_done.wait(30)
            yield piece

    def slow_upload() -> httpx.Response:
        url = f"{node.url}/{bucket}/k?partNumber=1&uploadId={upload_id}"
        length = str(sum(map(len, slow_body)))
        headers = sign_headers(
            "PUT", url, {"Content-Length": length}, ACCESS_KEY, SECRET_KEY, REGION
        )
        return httpx.put(url, headers=headers, content=trickle(), timeout=60)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(slow_upload)
        assert fast_started.wait(30)
        fast_etag = upload(s3, bucket, "k", upload_id, 1, b"fast part")
        fast_done.set()
        slow_response = slow.result(60)
    assert slow_response.status_code == 200, slow_response.text
    slow_etag = slow_response.headers["etag"]
    assert slow_etag == md5_etag(b"".join(slow_body)) != fast_etag
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, slow_etag)]
    with pytest.raises(ClientError) as stale:
        complete(s3, bucket, "k", upload_id, [(1, fast_etag)])
    assert error_of(stale) == (400, "InvalidPart")
    complete(s3, bucket, "k", upload_id, [(1, slow_etag)])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"".join(slow_body)
