"""Features lakenode does not provide are refused with 501, never silently ignored.

A client that asks for server-side encryption or a colder storage class must not get back a
200 for a plain object it believes is encrypted. (Object lock is served: a lock asked of a
bucket without it is InvalidRequest, tests/integration/test_object_lock.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def refused(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


@pytest.mark.parametrize(
    "extra",
    [
        {"ServerSideEncryption": "AES256"},
        {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
        {"StorageClass": "STANDARD_IA"},
        {"WebsiteRedirectLocation": "/elsewhere"},
    ],
)
def test_put_with_unsupported_feature_is_501_and_stores_nothing(
    s3: Any, bucket: str, extra: dict[str, str]
) -> None:
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"x", **extra) == (
        501,
        "NotImplemented",
    )
    assert refused(s3.head_object, Bucket=bucket, Key="k")[0] == 404


def test_standard_storage_class_is_accepted(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", StorageClass="STANDARD")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_multipart_and_copy_refuse_encryption_too(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    assert refused(
        s3.create_multipart_upload, Bucket=bucket, Key="m", ServerSideEncryption="AES256"
    ) == (501, "NotImplemented")
    assert refused(
        s3.copy_object,
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        ServerSideEncryption="AES256",
    ) == (501, "NotImplemented")
