"""Checksums computed independently of the node, for expected values in tests.

The node computes every CRC with awscrt; these come from elsewhere: CRC32 from zlib, CRC32C
from the crc32c package, SHA from hashlib, and CRC64NVME from the textbook definition written
out here (bit by bit, and a byte table built from the same definition for multi-MiB data).
tests/unit/api/test_checksums.py checks the CRC64NVME reference against its published check value.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Sequence

import crc32c

CRC64NVME_POLY = 0xAD93D23594C93659
_REFLECTED = int(f"{CRC64NVME_POLY:064b}"[::-1], 2)
_ONES = (1 << 64) - 1


def crc64nvme_bitwise(data: bytes) -> int:
    """CRC-64/NVME bit by bit: reflected polynomial, init and xorout all ones."""
    crc = _ONES
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_REFLECTED if crc & 1 else 0)
    return crc ^ _ONES


def _byte_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_REFLECTED if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _byte_table()


def crc64nvme(data: bytes) -> int:
    """The same CRC a byte at a time (about 1 s per 5 MiB in CPython)."""
    crc = _ONES
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _ONES


RAW_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "CRC32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "CRC32C": lambda data: crc32c.crc32c(data).to_bytes(4, "big"),
    "CRC64NVME": lambda data: crc64nvme(data).to_bytes(8, "big"),
    "SHA1": lambda data: hashlib.sha1(data).digest(),
    "SHA256": lambda data: hashlib.sha256(data).digest(),
}


def b64(algorithm: str, data: bytes) -> str:
    """The base64 checksum of ``data``, as the x-amz-checksum-* headers carry it."""
    return base64.b64encode(RAW_DIGESTS[algorithm](data)).decode()


def composite(algorithm: str, parts: Sequence[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: checksum of the raw part checksums, ``-N``."""
    raw = b"".join(RAW_DIGESTS[algorithm](part) for part in parts)
    return f"{b64(algorithm, raw)}-{len(parts)}"


def full_object(algorithm: str, parts: Sequence[bytes]) -> str:
    """S3's FULL_OBJECT multipart checksum: the CRC of the whole object's bytes."""
    return b64(algorithm, b"".join(parts))
