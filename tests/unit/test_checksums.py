"""x-amz-checksum-* computations against published values."""

from __future__ import annotations

import random

import pytest

from api.checksums import (
    ALGORITHMS,
    algorithm_from_header,
    header_name,
    new_checksum,
    verify_checksum,
)
from api.errors import S3Error


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


def test_unsupported_algorithm_is_reported_not_ignored() -> None:
    algorithm = algorithm_from_header("x-amz-checksum-crc64nvme")
    assert algorithm == "CRC64NVME"
    with pytest.raises(S3Error) as caught:
        new_checksum(algorithm)
    assert caught.value.code == "InvalidRequest"
    assert "x-amz-checksum-algorithm" in caught.value.message
    with pytest.raises(S3Error):
        header_name("MD5")


def test_verify_checksum() -> None:
    checksum = new_checksum("CRC32")
    checksum.update(b"hello world")
    verify_checksum(checksum, "DUoRhQ==")
    verify_checksum(checksum, " DUoRhQ== ")
    with pytest.raises(S3Error) as caught:
        verify_checksum(checksum, "AAAAAA==")
    assert caught.value.code == "BadDigest"
    assert caught.value.message == "The CRC32 you specified did not match the calculated checksum."
    for garbage in ("not base64!", "AAAA", "", "AAAAAAAAAAA="):
        with pytest.raises(S3Error) as caught:
            verify_checksum(checksum, garbage)
        assert caught.value.code == "InvalidRequest"


def test_bad_digest_names_the_algorithm() -> None:
    checksum = new_checksum("SHA256")
    checksum.update(b"x")
    with pytest.raises(S3Error) as caught:
        verify_checksum(checksum, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    assert caught.value.message.startswith("The SHA256 you specified")
