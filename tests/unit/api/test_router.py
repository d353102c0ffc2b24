"""Router: table-driven (method, target, query) -> operation."""

from __future__ import annotations

import pytest

from api.errors import S3Error
from api.router import Target, resolve, split_target

B, K = "bucket", "some/key"


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "copy", "operation"),
    [
        ("GET", None, None, {}, False, "ListBuckets"),
        ("GET", B, None, {}, False, "ListObjects"),
        ("GET", B, None, {"list-type": "2"}, False, "ListObjectsV2"),
        ("GET", B, None, {"location": ""}, False, "GetBucketLocation"),
        ("GET", B, None, {"versioning": ""}, False, "GetBucketVersioning"),
        ("PUT", B, None, {}, False, "CreateBucket"),
        ("DELETE", B, None, {}, False, "DeleteBucket"),
        ("HEAD", B, None, {}, False, "HeadBucket"),
        ("POST", B, None, {"delete": ""}, False, "DeleteObjects"),
        ("POST", B, None, {}, False, "PostObject"),
        ("PUT", B, K, {}, False, "PutObject"),
        ("GET", B, K, {}, False, "GetObject"),
        ("GET", B, K, {"response-content-type": "a/b"}, False, "GetObject"),
        ("HEAD", B, K, {}, False, "HeadObject"),
        ("DELETE", B, K, {}, False, "DeleteObject"),
        ("PUT", B, K, {}, True, "CopyObject"),
        ("PUT", B, None, {"versioning": ""}, False, "PutBucketVersioning"),
        ("GET", B, None, {"versions": ""}, False, "ListObjectVersions"),
        ("GET", B, None, {"uploads": ""}, False, "ListMultipartUploads"),
        ("POST", B, K, {"uploads": ""}, False, "CreateMultipartUpload"),
        ("PUT", B, K, {"uploadId": "u", "partNumber": "1"}, False, "UploadPart"),
        ("PUT", B, K, {"uploadId": "u", "partNumber": "1"}, True, "UploadPartCopy"),
        ("POST", B, K, {"uploadId": "u"}, False, "CompleteMultipartUpload"),
        ("DELETE", B, K, {"uploadId": "u"}, False, "AbortMultipartUpload"),
        ("GET", B, K, {"uploadId": "u"}, False, "ListParts"),
        ("GET", B, K, {"versionId": "v"}, False, "GetObject"),
        ("GET", B, K, {"tagging": ""}, False, "GetObjectTagging"),
        ("PUT", B, K, {"tagging": "", "versionId": "v"}, False, "PutObjectTagging"),
        ("DELETE", B, K, {"tagging": ""}, False, "DeleteObjectTagging"),
        ("GET", B, K, {"attributes": ""}, False, "GetObjectAttributes"),
        ("GET", B, None, {"tagging": ""}, False, "GetBucketTagging"),
        ("PUT", B, None, {"tagging": ""}, False, "PutBucketTagging"),
        ("DELETE", B, None, {"tagging": ""}, False, "DeleteBucketTagging"),
        ("GET", B, None, {"cors": ""}, False, "GetBucketCors"),
        ("PUT", B, None, {"cors": ""}, False, "PutBucketCors"),
        ("DELETE", B, None, {"cors": ""}, False, "DeleteBucketCors"),
        ("GET", B, None, {"ownershipControls": ""}, False, "GetBucketOwnershipControls"),
        ("PUT", B, None, {"ownershipControls": ""}, False, "PutBucketOwnershipControls"),
        ("DELETE", B, None, {"ownershipControls": ""}, False, "DeleteBucketOwnershipControls"),
        ("GET", B, None, {"publicAccessBlock": ""}, False, "GetPublicAccessBlock"),
        ("PUT", B, None, {"publicAccessBlock": ""}, False, "PutPublicAccessBlock"),
        ("DELETE", B, None, {"publicAccessBlock": ""}, False, "DeletePublicAccessBlock"),
        ("GET", B, None, {"policyStatus": ""}, False, "GetBucketPolicyStatus"),
        ("OPTIONS", B, None, {}, False, "PreflightCors"),
        ("OPTIONS", B, K, {}, False, "PreflightCors"),
        ("GET", B, None, {"lifecycle": ""}, False, "GetBucketLifecycleConfiguration"),
        ("PUT", B, None, {"lifecycle": ""}, False, "PutBucketLifecycleConfiguration"),
        ("DELETE", B, None, {"lifecycle": ""}, False, "DeleteBucketLifecycle"),
        ("GET", B, None, {"object-lock": ""}, False, "GetObjectLockConfiguration"),
        ("PUT", B, None, {"object-lock": ""}, False, "PutObjectLockConfiguration"),
        ("GET", B, K, {"retention": ""}, False, "GetObjectRetention"),
        ("PUT", B, K, {"retention": "", "versionId": "v"}, False, "PutObjectRetention"),
        ("GET", B, K, {"legal-hold": ""}, False, "GetObjectLegalHold"),
        ("PUT", B, K, {"legal-hold": ""}, False, "PutObjectLegalHold"),
    ],
)
def test_operations(
    method: str,
    bucket: str | None,
    key: str | None,
    query: dict[str, str],
    copy: bool,
    operation: str,
) -> None:
    assert resolve(method, Target(bucket, key), query, copy) == operation


@pytest.mark.parametrize(
    ("method", "bucket", "key", "query", "copy"),
    [
        ("GET", B, None, {"website": ""}, False),
        ("PUT", B, None, {"website": ""}, False),
        ("GET", B, None, {"logging": ""}, False),
        ("POST", B, K, {"restore": ""}, False),
        ("GET", B, K, {"select": ""}, False),
    ],
)
def test_known_but_unimplemented_features_are_501(
    method: str, bucket: str, key: str | None, query: dict[str, str], copy: bool
) -> None:
    with pytest.raises(S3Error) as excinfo:
        resolve(method, Target(bucket, key), query, copy)
    assert excinfo.value.code == "NotImplemented"
    assert excinfo.value.status == 501


def test_wrong_method_is_405() -> None:
    with pytest.raises(S3Error) as excinfo:
        resolve("PUT", Target(None, None), {}, False)
    assert excinfo.value.status == 405


@pytest.mark.parametrize(
    ("method", "key", "query"),
    [
        ("POST", K, {"tagging": ""}),
        ("POST", K, {}),
        ("PUT", K, {"attributes": ""}),
        ("POST", None, {"cors": ""}),
        ("OPTIONS", None, {}),
    ],
)
def test_wrong_method_on_new_subresources_is_405(
    method: str, key: str | None, query: dict[str, str]
) -> None:
    bucket = None if method == "OPTIONS" else B
    with pytest.raises(S3Error) as excinfo:
        resolve(method, Target(bucket, key), query, False)
    assert excinfo.value.status == 405


@pytest.mark.parametrize(
    ("path", "host", "domain", "expected"),
    [
        ("/", "127.0.0.1:9000", None, Target(None, None)),
        ("/b", "127.0.0.1:9000", None, Target("b", None)),
        ("/b/", "127.0.0.1:9000", None, Target("b", None)),
        ("/b/k/x", "127.0.0.1:9000", None, Target("b", "k/x")),
        ("/k/x", "photos.s3.local:9000", "s3.local", Target("photos", "k/x")),
        ("/", "photos.s3.local", "s3.local", Target("photos", None)),
        ("/b/k", "s3.local:9000", "s3.local", Target("b", "k")),
        ("/b/k", "Photos.S3.Local", "s3.local", Target("photos", "b/k")),
    ],
)
def test_split_target(path: str, host: str, domain: str | None, expected: Target) -> None:
    assert split_target(path, host, domain) == expected
