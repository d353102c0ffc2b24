"""CRC64NVME and multipart checksum types (COMPOSITE / FULL_OBJECT) end to end: boto3 and
awscli against a real node, every expected value computed here (tests/checksum_reference.py),
every refusal asserted with its HTTP status and AWS error code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import presign_url
from tests.checksum_reference import b64, composite, full_object
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import (
    error_of,
    headers_of,
    send,
    upload_checksummed_parts,
    xml_code,
)
from tests.integration.test_awscli import api_json, make_aws

MiB = 1 << 20


# ---- single PUT ---------------------------------------------------------------------------------


def test_put_crc64nvme_computed_by_boto3(s3: Any, bucket: str) -> None:
    data = os.urandom(300_000)
    expected = b64("CRC64NVME", data)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="CRC64NVME")
    assert put["ChecksumCRC64NVME"] == expected
    assert put["ChecksumType"] == "FULL_OBJECT"
    # boto3 validates the returned CRC64NVME against the body it reads.
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert (got["ChecksumCRC64NVME"], got["ChecksumType"]) == (expected, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    assert "ChecksumCRC64NVME" not in s3.head_object(Bucket=bucket, Key="k")
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" not in ranged  # a whole-object checksum never goes with a range
    attributes = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert attributes["Checksum"] == {"ChecksumCRC64NVME": expected, "ChecksumType": "FULL_OBJECT"}


def test_put_crc64nvme_value_given_by_the_client(s3: Any, bucket: str) -> None:
    data = b"polars sends this header itself"
    s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumCRC64NVME=b64("CRC64NVME", data))
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == b64("CRC64NVME", data)


def test_put_crc64nvme_mismatch_and_malformed(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"payload", ChecksumCRC64NVME=b64("CRC64NVME", b"other")
        )
    assert error_of(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"payload", ChecksumCRC64NVME="AAAAAA==")
    assert error_of(excinfo) == (400, "InvalidRequest")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_raw_request_checksum_rules(node: NodeProcess, bucket: str) -> None:
    """x-amz-sdk-checksum-algorithm needs its value; one checksum per request (AWS)."""
    data = b"raw body"
    lonely = send(
        node.url,
        "PUT",
        f"/{bucket}/k",
        headers={"x-amz-sdk-checksum-algorithm": "CRC64NVME"},
        body=data,
    )
    assert (lonely.status_code, xml_code(lonely)) == (400, "InvalidRequest")
    two = send(
        node.url,
        "PUT",
        f"/{bucket}/k",
        headers={
            "x-amz-checksum-crc64nvme": b64("CRC64NVME", data),
            "x-amz-checksum-crc32": b64("CRC32", data),
        },
        body=data,
    )
    assert (two.status_code, xml_code(two)) == (400, "InvalidRequest")
    unknown = send(
        node.url,
        "PUT",
        f"/{bucket}/k",
        headers={"x-amz-sdk-checksum-algorithm": "CRC16", "x-amz-checksum-crc16": "AAA="},
        body=data,
    )
    assert (unknown.status_code, xml_code(unknown)) == (400, "InvalidRequest")
    good = send(
        node.url,
        "PUT",
        f"/{bucket}/k",
        headers={
            "x-amz-sdk-checksum-algorithm": "CRC64NVME",
            "x-amz-checksum-crc64nvme": b64("CRC64NVME", data),
        },
        body=data,
    )
    assert good.status_code == 200
    assert good.headers["x-amz-checksum-crc64nvme"] == b64("CRC64NVME", data)
    assert good.headers["x-amz-checksum-type"] == "FULL_OBJECT"


# ---- presigned URLs with checksums in the query -----------------------------------------------


def _presigned_put(node: NodeProcess, bucket: str, key: str, query: dict[str, str]) -> str:
    encoded = "&".join(f"{name}={quote(value, safe='')}" for name, value in query.items())
    return presign_url(
        "PUT", f"{node.url}/{bucket}/{key}?{encoded}", ACCESS_KEY, SECRET_KEY, region=REGION
    )


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC64NVME"])
def test_presigned_query_checksum_is_verified(
    node: NodeProcess, s3: Any, bucket: str, algorithm: str
) -> None:
    data = os.urandom(10_000)
    name = f"x-amz-checksum-{algorithm.lower()}"
    good = _presigned_put(node, bucket, "good", {name: b64(algorithm, data)})
    assert httpx.put(good, content=data).status_code == 200
    head = s3.head_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == b64(algorithm, data)
    bad = _presigned_put(node, bucket, "bad", {name: b64(algorithm, b"not the data")})
    refused = httpx.put(bad, content=data)
    assert (refused.status_code, xml_code(refused)) == (400, "BadDigest")
    lonely = _presigned_put(node, bucket, "lonely", {"x-amz-sdk-checksum-algorithm": algorithm})
    refused = httpx.put(lonely, content=data)
    assert (refused.status_code, xml_code(refused)) == (400, "InvalidRequest")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["good"]


def test_presigned_empty_payload_placeholder_is_not_a_checksum(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    """The AWS SDK for JavaScript v3 signs the CRC32 of an EMPTY body into every presigned
    PutObject URL (its default since 3.729); AWS accepts any body through such a URL."""
    placeholder = {
        "x-amz-checksum-crc32": b64("CRC32", b""),
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    data = os.urandom(10_000)
    url = _presigned_put(node, bucket, "sdk-default", placeholder)
    assert httpx.put(url, content=data).status_code == 200
    assert s3.get_object(Bucket=bucket, Key="sdk-default")["Body"].read() == data
    # An empty body through the same kind of URL: the value describes it and is kept.
    empty = _presigned_put(node, bucket, "empty", placeholder)
    assert httpx.put(empty, content=b"").status_code == 200
    head = s3.head_object(Bucket=bucket, Key="empty", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == b64("CRC32", b"")
    # Any other value is still verified (test_presigned_query_checksum_is_verified).
    other = _presigned_put(node, bucket, "other", {"x-amz-checksum-crc32": b64("CRC32", b"x")})
    refused = httpx.put(other, content=data)
    assert (refused.status_code, xml_code(refused)) == (400, "BadDigest")


# ---- multipart ----------------------------------------------------------------------------------


def _create(s3: Any, bucket: str, key: str, algorithm: str, checksum_type: str | None) -> str:
    extra = {"ChecksumType": checksum_type} if checksum_type else {}
    created = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, **extra
    )
    assert created["ChecksumAlgorithm"] == algorithm
    upload_id: str = created["UploadId"]
    return upload_id


def _complete(s3: Any, bucket: str, key: str, upload_id: str, listed: Any, **extra: Any) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}, **extra
    )


def test_crc64nvme_multipart_is_full_object(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    expected = full_object("CRC64NVME", parts)
    upload_id = _create(s3, bucket, "mp", "CRC64NVME", None)  # FULL_OBJECT by default
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "CRC64NVME", parts)
    shown = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert (shown["ChecksumAlgorithm"], shown["ChecksumType"]) == ("CRC64NVME", "FULL_OBJECT")
    assert [p["ChecksumCRC64NVME"] for p in shown["Parts"]] == [b64("CRC64NVME", p) for p in parts]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert (uploads[0]["ChecksumAlgorithm"], uploads[0]["ChecksumType"]) == (
        "CRC64NVME",
        "FULL_OBJECT",
    )
    done = _complete(
        s3, bucket, "mp", upload_id, listed, ChecksumCRC64NVME=expected, ChecksumType="FULL_OBJECT"
    )
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (expected, "FULL_OBJECT")
    # A full-object CRC has no "-N": boto3 checks it against the whole body it downloads.
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)
    assert (got["ChecksumCRC64NVME"], got["ChecksumType"]) == (expected, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    attributes = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["Checksum", "ObjectParts"]
    )
    assert attributes["Checksum"] == {"ChecksumCRC64NVME": expected, "ChecksumType": "FULL_OBJECT"}
    assert [p["ChecksumCRC64NVME"] for p in attributes["ObjectParts"]["Parts"]] == [
        b64("CRC64NVME", p) for p in parts
    ]


def test_crc32_full_object_parts_need_not_be_listed(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), os.urandom(10)]
    upload_id = _create(s3, bucket, "mp", "CRC32", "FULL_OBJECT")
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "CRC32", parts)
    bare = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in listed]
    done = _complete(s3, bucket, "mp", upload_id, bare)
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (
        full_object("CRC32", parts),
        "FULL_OBJECT",
    )
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)
    assert got["ChecksumCRC32"] == full_object("CRC32", parts)


def test_crc32_composite_multipart(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(4321)]
    upload_id = _create(s3, bucket, "mp", "CRC32", "COMPOSITE")
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "CRC32", parts)
    expected = composite("CRC32", parts)
    done = _complete(s3, bucket, "mp", upload_id, listed, ChecksumCRC32=expected)
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (expected, "COMPOSITE")
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (expected, "COMPOSITE")


def test_upload_without_algorithm_checks_a_whole_object_crc(s3: Any, bucket: str) -> None:
    """Created without an algorithm (as pyarrow does) with CRC64NVME parts: a whole-object
    CRC64NVME sent with the completion is checked and kept, as AWS's default checksum."""
    parts = [os.urandom(5 * MiB), os.urandom(2000)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "CRC64NVME", parts)
    expected = full_object("CRC64NVME", parts)
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, listed, ChecksumCRC64NVME=b64("CRC64NVME", b"x"))
    assert error_of(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, listed, ChecksumSHA256=b64("SHA256", b"x"))
    assert error_of(excinfo) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as excinfo:  # the parts carry no CRC32
        _complete(s3, bucket, "mp", upload_id, listed, ChecksumCRC32=b64("CRC32", b"x"))
    assert error_of(excinfo) == (400, "InvalidPart")
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, listed, ChecksumType="FULL_OBJECT")
    assert error_of(excinfo) == (400, "InvalidRequest")  # no algorithm and no CRC: no type
    done = _complete(
        s3, bucket, "mp", upload_id, listed, ChecksumCRC64NVME=expected, ChecksumType="FULL_OBJECT"
    )
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (expected, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)
    assert got["ChecksumCRC64NVME"] == expected


def test_part_without_checksum_gets_the_uploads_algorithm(node: NodeProcess, bucket: str) -> None:
    """A client that sends no part checksum (here boto3 told to send only required ones):
    the node computes the upload's CRC for the part, so the full-object CRC still forms."""
    quiet = make_client(node.url, request_checksum_calculation="when_required")
    parts = [os.urandom(5 * MiB), os.urandom(99)]
    upload_id = _create(quiet, bucket, "mp", "CRC32C", "FULL_OBJECT")
    listed = []
    for number, data in enumerate(parts, start=1):
        part = quiet.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data
        )
        assert part["ChecksumCRC32C"] == b64("CRC32C", data)
        listed.append({"PartNumber": number, "ETag": part["ETag"]})
    done = _complete(quiet, bucket, "mp", upload_id, listed)
    assert done["ChecksumCRC32C"] == full_object("CRC32C", parts)


@pytest.mark.parametrize(
    ("algorithm", "checksum_type"),
    [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")],
)
def test_create_refuses_impossible_checksum_types(
    s3: Any, bucket: str, algorithm: str, checksum_type: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(s3, bucket, "mp", algorithm, checksum_type)
    assert error_of(excinfo) == (400, "InvalidRequest")
    assert checksum_type in excinfo.value.response["Error"]["Message"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_create_refuses_a_type_without_an_algorithm(node: NodeProcess, bucket: str) -> None:
    response = send(
        node.url, "POST", f"/{bucket}/mp", "uploads", headers={"x-amz-checksum-type": "COMPOSITE"}
    )
    assert (response.status_code, xml_code(response)) == (400, "InvalidRequest")
    response = send(
        node.url,
        "POST",
        f"/{bucket}/mp",
        "uploads",
        headers={"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "HALF"},
    )
    assert (response.status_code, xml_code(response)) == (400, "InvalidRequest")
    response = send(
        node.url, "POST", f"/{bucket}/mp", "uploads", headers={"x-amz-checksum-algorithm": "crc32"}
    )
    assert response.status_code == 200
    assert response.headers["x-amz-checksum-algorithm"] == "CRC32"
    assert response.headers["x-amz-checksum-type"] == "COMPOSITE"


def test_complete_whole_object_checksum_errors(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(10)]
    upload_id = _create(s3, bucket, "mp", "CRC32", "FULL_OBJECT")
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "CRC32", parts)
    expected = full_object("CRC32", parts)
    refusals = [
        ({"ChecksumCRC32": b64("CRC32", b"other bytes")}, (400, "BadDigest")),
        ({"ChecksumCRC32": "not-base64!"}, (400, "InvalidRequest")),
        ({"ChecksumCRC32": f"{expected}-2"}, (400, "InvalidRequest")),  # not composite
        ({"ChecksumCRC32C": b64("CRC32C", b"".join(parts))}, (400, "InvalidRequest")),
        ({"ChecksumType": "COMPOSITE"}, (400, "InvalidRequest")),
    ]
    for extra, error in refusals:
        with pytest.raises(ClientError) as excinfo:
            _complete(s3, bucket, "mp", upload_id, listed, **extra)
        assert error_of(excinfo) == error, extra
    wrong_part = [dict(listed[0]), {**listed[1], "ChecksumCRC32": b64("CRC32", b"x")}]
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, wrong_part)
    assert error_of(excinfo) == (400, "InvalidPart")
    # Nothing was committed by the refusals: the upload still completes.
    done = _complete(s3, bucket, "mp", upload_id, listed, ChecksumCRC32=expected)
    assert done["ChecksumCRC32"] == expected


def test_composite_complete_with_wrong_object_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(10)]
    upload_id = _create(s3, bucket, "mp", "SHA256", None)
    listed = upload_checksummed_parts(s3, bucket, "mp", upload_id, "SHA256", parts)
    wrong = composite("SHA256", [parts[1], parts[0]])
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, listed, ChecksumSHA256=wrong)
    assert error_of(excinfo) == (400, "BadDigest")
    done = _complete(s3, bucket, "mp", upload_id, listed, ChecksumSHA256=composite("SHA256", parts))
    assert done["ChecksumType"] == "COMPOSITE"


def test_upload_part_crc64nvme_mismatch(s3: Any, bucket: str) -> None:
    upload_id = _create(s3, bucket, "mp", "CRC64NVME", None)
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"part",
            ChecksumCRC64NVME=b64("CRC64NVME", b"trap"),
        )
    assert error_of(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=1,
            Body=b"part",
            ChecksumAlgorithm="SHA256",
        )
    assert error_of(excinfo) == (400, "InvalidRequest")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts", []) == []


# ---- copies -------------------------------------------------------------------------------------


def test_copy_object_with_a_new_checksum_algorithm(s3: Any, bucket: str) -> None:
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="SHA256")
    copied = s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        ChecksumAlgorithm="CRC64NVME",
    )["CopyObjectResult"]
    assert copied["ChecksumCRC64NVME"] == b64("CRC64NVME", data)
    assert copied["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == b64("CRC64NVME", data)
    assert "ChecksumSHA256" not in head
    # Changing only the checksum of an object in place is a legal copy (AWS's way to do it).
    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource={"Bucket": bucket, "Key": "src"},
        ChecksumAlgorithm="CRC32",
    )
    head = s3.head_object(Bucket=bucket, Key="src", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == b64("CRC32", data)
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == data
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket,
            Key="dst2",
            CopySource={"Bucket": bucket, "Key": "src"},
            ChecksumAlgorithm="CRC16",
        )
    assert error_of(excinfo) == (400, "InvalidRequest")


def test_upload_part_copy_into_a_crc64nvme_upload(s3: Any, bucket: str) -> None:
    source = os.urandom(5 * MiB + 100)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = _create(s3, bucket, "mp", "CRC64NVME", "FULL_OBJECT")
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]
    assert first["ChecksumCRC64NVME"] == b64("CRC64NVME", source[: 5 * MiB])
    tail = s3.upload_part(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=2,
        Body=source[5 * MiB :],
        ChecksumAlgorithm="CRC64NVME",
    )
    done = _complete(
        s3,
        bucket,
        "mp",
        upload_id,
        [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": tail["ETag"]}],
    )
    assert done["ChecksumCRC64NVME"] == b64("CRC64NVME", source)


# ---- awscli -------------------------------------------------------------------------------------


def test_awscli_crc64nvme_single_and_multipart(
    node: NodeProcess, s3: Any, bucket: str, tmp_path: Path
) -> None:
    aws = make_aws(
        node,
        tmp_path / "aws-home",
        "[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n",
    )
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(100_000))
    put = api_json(
        aws,
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "single",
        "--body",
        str(small),
        "--checksum-algorithm",
        "CRC64NVME",
    )
    assert put["ChecksumCRC64NVME"] == b64("CRC64NVME", small.read_bytes())
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * MiB + 123_456))
    aws("s3", "cp", str(big), f"s3://{bucket}/multi", "--checksum-algorithm", "CRC64NVME")
    head = s3.head_object(Bucket=bucket, Key="multi", ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-2"')  # really multipart
    assert head["ChecksumCRC64NVME"] == b64("CRC64NVME", big.read_bytes())
    assert headers_of(head)["x-amz-checksum-type"] == "FULL_OBJECT"
    single = s3.head_object(Bucket=bucket, Key="single", ChecksumMode="ENABLED")
    assert single["ChecksumCRC64NVME"] == b64("CRC64NVME", small.read_bytes())
    back = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/multi", str(back))
    assert back.read_bytes() == big.read_bytes()
