"""x-amz-checksum-* computations against published values."""

from __future__ import annotations

import base64
import random

import pytest

from api.checksums import (
    ALGORITHMS,
    algorithm_from_header,
    header_name,
    multipart_checksum_type,
    new_checksum,
    verify_checksum,
)
from api.errors import S3Error
from storage.checksums import COMPOSITE, FULL_OBJECT, ChecksumMismatch, multipart_checksum
from tests.checksum_reference import RAW_DIGESTS, crc64nvme, crc64nvme_bitwise
from tests.checksum_reference import b64 as ref_b64


def _b64(algorithm: str, data: bytes) -> str:
    checksum = new_checksum(algorithm)
    checksum.update(data)
    return checksum.b64digest()


@pytest.mark.parametrize(
    ("algorithm", "data", "expected"),
    [
        # zlib/IEEE CRC-32 of "hello world" is 0x0D4A1185.
        ("CRC32", b"hello world", "DUoRhQ=="),
        # The CRC-32C check value (RFC 3720 / iSCSI) is 0xE3069283.
        ("CRC32C", b"123456789", "4waSgw=="),
        # CRC-32 check value 0xCBF43926.
        ("CRC32", b"123456789", "y/Q5Jg=="),
        # AWS's trailing-checksum example: 66560 bytes of 'a' have CRC32C sOO8/Q==.
        ("CRC32C", b"a" * 66560, "sOO8/Q=="),
        ("SHA256", b"", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ("SHA1", b"", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
        ("CRC32", b"", "AAAAAA=="),
    ],
)
def test_known_values(algorithm: str, data: bytes, expected: str) -> None:
    assert _b64(algorithm, data) == expected


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_incremental_equals_one_shot(algorithm: str) -> None:
    rng = random.Random(algorithm)
    data = rng.randbytes(100_000)
    checksum = new_checksum(algorithm)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 5000)
        checksum.update(data[pos : pos + step])
        pos += step
    assert checksum.b64digest() == _b64(algorithm, data)
    assert _b64(algorithm, data) != _b64(algorithm, data[:-1])


def test_algorithm_names_are_case_insensitive() -> None:
    assert new_checksum("crc32c").algorithm == "CRC32C"
    assert _b64("sha256", b"") == _b64("SHA256", b"")


def test_header_names() -> None:
    assert header_name("CRC32") == "x-amz-checksum-crc32"
    assert header_name("sha1") == "x-amz-checksum-sha1"
    for algorithm in ALGORITHMS:
        assert algorithm_from_header(header_name(algorithm)) == algorithm
    assert algorithm_from_header("X-Amz-Checksum-CRC32C") == "CRC32C"
    assert algorithm_from_header("x-amz-checksum-algorithm") is None
    assert algorithm_from_header("x-amz-checksum-type") is None
    assert algorithm_from_header("content-md5") is None


def test_unknown_algorithm_is_reported_not_ignored() -> None:
    algorithm = algorithm_from_header("x-amz-checksum-md5")
    assert algorithm == "MD5"
    with pytest.raises(S3Error) as caught:
        new_checksum(algorithm)
    assert caught.value.code == "InvalidRequest"


# ---- CRC64NVME against an independent reference ---------------------------------------------


def _crc64_b64(value: int) -> str:
    return base64.b64encode(value.to_bytes(8, "big")).decode()


def test_crc64nvme_reference_has_the_published_check_value() -> None:
    # The reference itself is right: the catalogued check value of CRC-64/NVME.
    assert crc64nvme_bitwise(b"123456789") == 0xAE8B14860A799888
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888
    data = random.Random(1).randbytes(3000)
    assert crc64nvme(data) == crc64nvme_bitwise(data)


@pytest.mark.parametrize(
    "data", [b"", b"123456789", b"a", bytes(range(256)) * 5, b"\xff" * 1000, b"x" * 4097]
)
def test_crc64nvme_matches_the_bitwise_reference(data: bytes) -> None:
    assert _b64("CRC64NVME", data) == _crc64_b64(crc64nvme_bitwise(data))


def test_crc64nvme_check_value_and_wire_format() -> None:
    assert _b64("CRC64NVME", b"123456789") == _crc64_b64(0xAE8B14860A799888)
    assert len(base64.b64decode(_b64("CRC64NVME", b"abc"))) == 8
    assert header_name("crc64nvme") == "x-amz-checksum-crc64nvme"
    assert algorithm_from_header("x-amz-checksum-crc64nvme") == "CRC64NVME"


def test_crc64nvme_random_data_against_reference() -> None:
    rng = random.Random(64)
    for size in (1, 7, 8, 9, 63, 64, 65, 1000, 3001):
        data = rng.randbytes(size)
        assert _b64("CRC64NVME", data) == _crc64_b64(crc64nvme_bitwise(data))


def test_crc64nvme_verify_bad_digest_and_malformed() -> None:
    checksum = new_checksum("CRC64NVME")
    checksum.update(b"data")
    verify_checksum(checksum, _crc64_b64(crc64nvme_bitwise(b"data")))
    with pytest.raises(S3Error) as caught:
        verify_checksum(checksum, _crc64_b64(crc64nvme_bitwise(b"other")))
    assert caught.value.code == "BadDigest"
    for malformed in ("AAAAAA==", "not base64!", ""):  # a 4-byte value is not a CRC64
        with pytest.raises(S3Error) as caught:
            verify_checksum(checksum, malformed)
        assert caught.value.code == "InvalidRequest"


# ---- multipart checksums: full object and composite -------------------------------------------


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksum_is_the_crc_of_the_whole_object(algorithm: str) -> None:
    rng = random.Random(algorithm)
    parts = [rng.randbytes(n) for n in (5000, 1, 0, 777, 4096)]
    listed = [(ref_b64(algorithm, part), len(part)) for part in parts]
    combined = multipart_checksum(algorithm, FULL_OBJECT, listed)
    # Computed independently: the reference CRC of the concatenated bytes.
    assert combined == ref_b64(algorithm, b"".join(parts))
    assert multipart_checksum(algorithm, FULL_OBJECT, listed[:1]) == listed[0][0]
    assert combined != multipart_checksum(algorithm, FULL_OBJECT, listed[::-1])


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256"])
def test_composite_checksum_is_the_checksum_of_the_part_checksums(algorithm: str) -> None:
    parts = [b"first part", b"second", b"3"]
    listed = [(ref_b64(algorithm, part), len(part)) for part in parts]
    raw = b"".join(RAW_DIGESTS[algorithm](part) for part in parts)
    expected = f"{ref_b64(algorithm, raw)}-3"
    assert multipart_checksum(algorithm, COMPOSITE, listed) == expected


def test_malformed_part_checksum_cannot_be_combined() -> None:
    with pytest.raises(ChecksumMismatch):
        multipart_checksum("CRC64NVME", FULL_OBJECT, [("AAAAAA==", 4)])


@pytest.mark.parametrize(
    ("algorithm", "requested", "expected"),
    [
        ("CRC32", None, "COMPOSITE"),
        ("CRC32C", None, "COMPOSITE"),
        ("SHA1", None, "COMPOSITE"),
        ("SHA256", None, "COMPOSITE"),
        ("CRC64NVME", None, "FULL_OBJECT"),
        ("CRC32", "FULL_OBJECT", "FULL_OBJECT"),
        ("CRC32C", "full_object", "FULL_OBJECT"),
        ("CRC32", "COMPOSITE", "COMPOSITE"),
        ("CRC64NVME", "FULL_OBJECT", "FULL_OBJECT"),
        ("SHA256", "COMPOSITE", "COMPOSITE"),
    ],
)
def test_multipart_checksum_types(algorithm: str, requested: str | None, expected: str) -> None:
    assert multipart_checksum_type(algorithm, requested) == expected


@pytest.mark.parametrize(
    ("algorithm", "requested", "message"),
    [
        (
            "SHA256",
            "FULL_OBJECT",
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.",
        ),
        (
            "SHA1",
            "FULL_OBJECT",
            "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm.",
        ),
        (
            "CRC64NVME",
            "COMPOSITE",
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
        ),
        ("CRC32", "PARTIAL", "Value for x-amz-checksum-type header is invalid."),
    ],
)
def test_refused_multipart_checksum_types(algorithm: str, requested: str, message: str) -> None:
    with pytest.raises(S3Error) as caught:
        multipart_checksum_type(algorithm, requested)
    assert (caught.value.code, caught.value.message) == ("InvalidRequest", message)
