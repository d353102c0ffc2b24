"""Object and bucket tagging against a real node: the ?tagging sub-resource, x-amz-tagging on
PutObject / CreateMultipartUpload / CopyObject, x-amz-tagging-count, and AWS's limits."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

MiB = 1 << 20


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


def tag_set(pairs: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs.items()]}


def tags_of(s3: Any, bucket: str, key: str, **kwargs: Any) -> dict[str, str]:
    response = s3.get_object_tagging(Bucket=bucket, Key=key, **kwargs)
    return {t["Key"]: t["Value"] for t in response["TagSet"]}


def signed_put(url: str, path: str, query: str, body: bytes) -> httpx.Response:
    full = f"{url}{path}?{query}"
    headers = sign_headers(
        "PUT", full, {}, ACCESS_KEY, SECRET_KEY, REGION, hashlib.sha256(body).hexdigest()
    )
    return httpx.put(full, headers=headers, content=body, timeout=10)


# ---- object tagging ---------------------------------------------------------------------------


def test_object_tagging_round_trip(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert tags_of(s3, bucket, "k") == {}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1", "b c": "d/e"}))
    assert tags_of(s3, bucket, "k") == {"a": "1", "b c": "d/e"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"only": ""}))
    assert tags_of(s3, bucket, "k") == {"only": ""}
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "k") == {}


def test_tagging_count_on_get_and_head(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1", "b": "2"}))
    assert s3.head_object(Bucket=bucket, Key="k")["TagCount"] == 2
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["TagCount"] == 2
    assert got["Body"].read() == b"x"


def test_tags_belong_to_a_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="v=1")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    assert tags_of(s3, bucket, "k") == {}
    assert tags_of(s3, bucket, "k", VersionId=first) == {"v": "1"}
    put = s3.put_object_tagging(
        Bucket=bucket, Key="k", VersionId=second, Tagging=tag_set({"v": "2"})
    )
    assert put["VersionId"] == second
    got = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=first)
    assert got["VersionId"] == first
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=first)["TagCount"] == 1
    assert tags_of(s3, bucket, "k") == {"v": "2"}
    assert s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=first)["VersionId"] == first
    assert tags_of(s3, bucket, "k", VersionId=first) == {}
    assert tags_of(s3, bucket, "k") == {"v": "2"}


def test_tagging_missing_object_or_version(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_tagging(Bucket=bucket, Key="nope")
    assert error_of(excinfo) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(Bucket=bucket, Key="nope", Tagging=tag_set({"a": "1"}))
    assert error_of(excinfo) == (404, "NoSuchKey")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="no-such-version")
    assert error_of(excinfo) == (404, "NoSuchVersion")


def test_put_object_with_tagging_header(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1&b%20c=x%2Fy&empty=")
    assert tags_of(s3, bucket, "k") == {"a": "1", "b c": "x/y", "empty": ""}


def test_multipart_upload_with_tagging(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", Tagging="team=blue&tier=1", Metadata={"m": "v"}
    )
    data = os.urandom(5 * MiB + 3)
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=data
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert tags_of(s3, bucket, "mp") == {"team": "blue", "tier": "1"}
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert head["TagCount"] == 2
    assert head["Metadata"] == {"m": "v"}
    assert not any("lakenode" in h for h in head["ResponseMetadata"]["HTTPHeaders"])


def test_multipart_tagging_header_is_validated_at_create(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="aws:x=1")
    assert error_of(excinfo) == (400, "InvalidTag")


def test_copy_object_tagging_directive(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    assert tags_of(s3, bucket, "copied") == {"a": "1"}
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="b=2",
    )
    assert tags_of(s3, bucket, "replaced") == {"b": "2"}
    s3.copy_object(
        Bucket=bucket,
        Key="cleared",
        CopySource={"Bucket": bucket, "Key": "src"},
        TaggingDirective="REPLACE",
    )
    assert tags_of(s3, bucket, "cleared") == {}
    assert tags_of(s3, bucket, "src") == {"a": "1"}


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"aws:reserved": "v"},
    ],
    ids=["eleven-tags", "long-key", "long-value", "aws-prefix"],
)
def test_object_tag_limits(s3: Any, bucket: str, tags: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert error_of(excinfo) == (400, "InvalidTag")
    assert tags_of(s3, bucket, "k") == {}


def test_object_tag_limits_at_the_boundary_pass(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    tags = {f"{i}" + "k" * 127: "v" * 256 for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert tags_of(s3, bucket, "k") == tags


def test_duplicate_tag_keys(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    duplicated = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=duplicated)
    assert error_of(excinfo) == (400, "InvalidTag")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="a=1&a=2")
    assert error_of(excinfo) == (400, "InvalidArgument")


def test_tagging_header_limits(s3: Any, bucket: str) -> None:
    eleven = "&".join(f"k{i}=v" for i in range(11))
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=eleven)
    assert error_of(excinfo) == (400, "InvalidTag")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(excinfo)[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag>",
        b"<Other><TagSet/></Other>",
        b"<Tagging/>",
    ],
    ids=["no-value", "unclosed", "wrong-root", "no-tagset"],
)
def test_malformed_tagging_xml(node: NodeProcess, s3: Any, bucket: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    response = signed_put(node.url, f"/{bucket}/k", "tagging", body)
    assert response.status_code == 400, response.text
    assert "<Code>MalformedXML</Code>" in response.text
    response = signed_put(node.url, f"/{bucket}", "tagging", body)
    assert response.status_code == 400, response.text
    assert "<Code>MalformedXML</Code>" in response.text


# ---- bucket tagging ---------------------------------------------------------------------------


def test_bucket_tagging_round_trip(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"env": "prod", "x": "<&>"}))
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {t["Key"]: t["Value"] for t in got} == {"env": "prod", "x": "<&>"}
    deleted = s3.delete_bucket_tagging(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchTagSet")


def test_bucket_tag_limit_is_fifty(s3: Any, bucket: str) -> None:
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({f"k{i}": "v" for i in range(50)}))
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({f"k{i}": "v" for i in range(51)}))
    assert error_of(excinfo) == (400, "InvalidTag")
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50


def test_bucket_tagging_on_missing_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket="no-such-bucket-for-tagging")
    assert error_of(excinfo) == (404, "NoSuchBucket")
