"""Conditional writes against a real node: If-None-Match: * and If-Match on PutObject,
CopyObject (the destination), CompleteMultipartUpload, and If-Match on DeleteObject.

AWS's answers: 412 PreconditionFailed when the condition fails, 404 NoSuchKey for If-Match on
a key with no current object, 409 ConditionalRequestConflict when a conflicting write commits
while the request is in flight, 501 NotImplemented for If-None-Match with an ETag on a write.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import MiB, error_of, md5_etag, send, xml_code

WRITERS = 50


def _create_only(s3: Any, bucket: str, key: str, body: bytes) -> tuple[int, str]:
    """One If-None-Match: * PUT: (status, error code or ETag)."""
    try:
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except ClientError as error:
        response_meta = error.response
        return (
            int(response_meta["ResponseMetadata"]["HTTPStatusCode"]),
            str(response_meta["Error"]["Code"]),
        )
    return 200, str(response["ETag"])


def test_concurrent_create_only_puts_have_one_winner(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    clients = [make_client(node.url, max_pool_connections=WRITERS) for _ in range(4)]
    bodies = [f"writer {n} ".encode() * (1000 + n) for n in range(WRITERS)]
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        results = list(
            pool.map(
                lambda n: _create_only(clients[n % len(clients)], bucket, "race", bodies[n]),
                range(WRITERS),
            )
        )
    winners = [n for n, (status, _) in enumerate(results) if status == 200]
    assert len(winners) == 1, results
    losers = [results[n] for n in range(WRITERS) if n not in winners]
    assert all(
        (status, code) in ((412, "PreconditionFailed"), (409, "ConditionalRequestConflict"))
        for status, code in losers
    ), losers
    stored = s3.get_object(Bucket=bucket, Key="race")
    assert stored["Body"].read() == bodies[winners[0]]
    assert stored["ETag"] == results[winners[0]][1] == md5_etag(bodies[winners[0]])


def test_if_none_match_on_existing_key_is_412_before_the_body(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert error_of(refused) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    created = s3.put_object(Bucket=bucket, Key="new", Body=b"fresh", IfNoneMatch="*")
    assert created["ETag"] == md5_etag(b"fresh")


def test_if_none_match_with_an_etag_is_not_implemented(node: NodeProcess, bucket: str) -> None:
    for headers in ({"If-None-Match": '"abc"'}, {"If-None-Match": "*", "If-Match": '"abc"'}):
        response = send(node.url, "PUT", f"/{bucket}/k", headers=headers, body=b"x")
        assert (response.status_code, xml_code(response)) == (501, "NotImplemented"), headers


def test_if_match_quoted_and_unquoted(node: NodeProcess, s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert second["ETag"] == md5_etag(b"v2")
    bare = second["ETag"].strip('"')
    response = send(node.url, "PUT", f"/{bucket}/k", headers={"If-Match": bare}, body=b"v3")
    assert response.status_code == 200, response.text
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v4", IfMatch=etag)
    assert error_of(stale) == (412, "PreconditionFailed")
    weak = send(node.url, "PUT", f"/{bucket}/k", headers={"If-Match": f'W/"{md5_etag(b"v3")}"'})
    assert (weak.status_code, xml_code(weak)) == (412, "PreconditionFailed")
    any_version = send(node.url, "PUT", f"/{bucket}/k", headers={"If-Match": "*"}, body=b"v5")
    assert any_version.status_code == 200
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v5"


def test_if_match_on_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=md5_etag(b"x"))
    assert error_of(missing) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as gone:
        s3.delete_object(Bucket=bucket, Key="absent", IfMatch=md5_etag(b"x"))
    assert error_of(gone) == (404, "NoSuchKey")


def test_delete_marker_counts_as_absent(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch="*")
    assert error_of(exists) == (412, "PreconditionFailed")
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True
    with pytest.raises(ClientError) as behind_marker:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert error_of(behind_marker) == (404, "NoSuchKey")
    recreated = s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfNoneMatch="*")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="k")
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
    assert recreated["VersionId"] == versions["Versions"][0]["VersionId"]


def test_conditional_delete(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as stale:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch=md5_etag(b"other"))
    assert error_of(stale) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    deleted = s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(missing)[0] == 404


def test_conditional_delete_of_a_version(s3: Any, bucket: str) -> None:
    """With a version id the condition is still about the key's current version (AWS)."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    new = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    with pytest.raises(ClientError) as stale:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=old["VersionId"], IfMatch=old["ETag"])
    assert error_of(stale) == (412, "PreconditionFailed")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=old["VersionId"], IfMatch=new["ETag"])
    versions = s3.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]
    assert [v["VersionId"] for v in versions] == [new["VersionId"]]


def test_conditional_copy_checks_the_destination(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"taken")
    source = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as exists:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfNoneMatch="*")
    assert error_of(exists) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as stale:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=md5_etag(b"source"))
    assert error_of(stale) == (412, "PreconditionFailed")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfMatch=md5_etag(b"taken"))
    s3.copy_object(Bucket=bucket, Key="fresh", CopySource=source, IfNoneMatch="*")
    for key in ("dst", "fresh"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"source"
    with pytest.raises(ClientError) as missing:
        s3.copy_object(Bucket=bucket, Key="none", CopySource=source, IfMatch='"abc"')
    assert error_of(missing) == (404, "NoSuchKey")


def _upload(s3: Any, bucket: str, key: str, data: bytes) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data)
    return upload_id, [{"PartNumber": 1, "ETag": part["ETag"]}]


def test_conditional_complete_multipart_upload(s3: Any, bucket: str) -> None:
    first_id, first_parts = _upload(s3, bucket, "k", b"a" * MiB)
    second_id, second_parts = _upload(s3, bucket, "k", b"b" * MiB)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=first_id,
        MultipartUpload={"Parts": first_parts},
        IfNoneMatch="*",
    )
    with pytest.raises(ClientError) as lost:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=second_id,
            MultipartUpload={"Parts": second_parts},
            IfNoneMatch="*",
        )
    assert error_of(lost) == (412, "PreconditionFailed")
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=second_id,
        MultipartUpload={"Parts": second_parts},
        IfMatch=etag,
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"b" * MiB
    assert done["ETag"] != etag


def test_condition_mark_is_never_shown(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch="*")
    response = send(node.url, "GET", f"/{bucket}/k")
    assert not any(name.lower().startswith("x-lakenode-") for name in response.headers)


def test_conditional_delete_objects(s3: Any, bucket: str) -> None:
    kept = s3.put_object(Bucket=bucket, Key="kept", Body=b"kept")["ETag"]
    gone = s3.put_object(Bucket=bucket, Key="gone", Body=b"gone")["ETag"]
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "kept", "ETag": md5_etag(b"something else")},
                {"Key": "gone", "ETag": gone},
                {"Key": "absent", "ETag": kept},
            ]
        },
    )
    assert [d["Key"] for d in answer["Deleted"]] == ["gone"]
    errors = {e["Key"]: e["Code"] for e in answer["Errors"]}
    assert errors == {"kept": "PreconditionFailed", "absent": "NoSuchKey"}
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"kept"
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="gone")
    assert error_of(missing)[0] == 404
