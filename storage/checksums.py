"""Checksum arithmetic for S3's additional checksums: digests and multipart composition.

Pure functions over bytes and integers, no HTTP: the API verifies request bodies with
:class:`RunningDigest`, and the completing transaction of a multipart upload builds the
object's checksum from its parts' stored checksums with :func:`multipart_checksum`, without
reading any data again.

All CRCs come from ``awscrt`` (AWS's own runtime, hardware-accelerated, the same code the
SDKs use): CRC32, CRC32C and CRC64NVME, and the ``combine_*`` functions that give the CRC of
a concatenation from the CRCs of its pieces and the second piece's length. SHA-1/SHA-256
come from hashlib. Values travel as AWS sends them: base64 of the big-endian CRC, or of the
raw SHA digest.

Multipart objects have one of two checksum types (AWS, "Checking object integrity"):

* ``FULL_OBJECT``: the CRC of the whole object, exactly what a single PUT of the same bytes
  would get; CRC32, CRC32C and CRC64NVME only (CRC64NVME is always FULL_OBJECT).
* ``COMPOSITE``: the digest of the concatenated raw part checksums, then ``-<part count>``;
  CRC32, CRC32C, SHA1, SHA256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from awscrt import checksums as crt

FULL_OBJECT: Final = "FULL_OBJECT"
COMPOSITE: Final = "COMPOSITE"

# Digest size in bytes, per algorithm (AWS's spelling).
DIGEST_SIZE: Final = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
ALGORITHMS: Final = tuple(DIGEST_SIZE)
CRC_ALGORITHMS: Final = ("CRC32", "CRC32C", "CRC64NVME")
# AWS's default checksum: since December 2024 S3 gives every new object uploaded without a
# checksum a FULL_OBJECT CRC64NVME (a multipart one combined from its parts' CRC64NVMEs).
DEFAULT_ALGORITHM: Final = "CRC64NVME"
# Which multipart checksum types each algorithm allows; the first is the default.
MULTIPART_TYPES: Final = {
    "CRC32": (COMPOSITE, FULL_OBJECT),
    "CRC32C": (COMPOSITE, FULL_OBJECT),
    "CRC64NVME": (FULL_OBJECT,),
    "SHA1": (COMPOSITE,),
    "SHA256": (COMPOSITE,),
}

_CRC: Final[dict[str, Callable[[bytes, int], int]]] = {
    "CRC32": crt.crc32,
    "CRC32C": crt.crc32c,
    "CRC64NVME": crt.crc64nvme,
}
_COMBINE: Final[dict[str, Callable[[int, int, int], int]]] = {
    "CRC32": crt.combine_crc32,
    "CRC32C": crt.combine_crc32c,
    "CRC64NVME": crt.combine_crc64nvme,
}


class ChecksumMismatch(ValueError):
    """Stored part checksums cannot form the object's checksum (missing or malformed)."""


class RunningDigest:
    """An incremental checksum over a byte stream; ``digest()`` gives the raw bytes."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in DIGEST_SIZE:
            raise ValueError(f"unknown checksum algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._crc = 0
        self._hash = None
        if algorithm == "SHA1":
            self._hash = hashlib.sha1()
        elif algorithm == "SHA256":
            self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        else:
            self._crc = _CRC[self.algorithm](data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(DIGEST_SIZE[self.algorithm], "big")


def digest(algorithm: str, data: bytes) -> bytes:
    """The raw checksum of ``data`` in one call."""
    running = RunningDigest(algorithm)
    running.update(data)
    return running.digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_value(algorithm: str, value: str) -> bytes | None:
    """The raw digest in a base64 value, or None when it is not one of the right size."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == DIGEST_SIZE[algorithm] else None


def default_multipart_type(algorithm: str) -> str:
    return MULTIPART_TYPES[algorithm][0]


def combine_crcs(algorithm: str, parts: Sequence[tuple[bytes, int]]) -> bytes:
    """The CRC of the concatenation of pieces given as (raw CRC, length): no data is read."""
    size = DIGEST_SIZE[algorithm]
    combined = 0
    for raw, length in parts:
        combined = _COMBINE[algorithm](combined, int.from_bytes(raw, "big"), length)
    return combined.to_bytes(size, "big")


def multipart_checksum(algorithm: str, checksum_type: str, parts: Sequence[tuple[str, int]]) -> str:
    """The object's checksum value from its parts' (base64 checksum, size), in part order.

    FULL_OBJECT -> base64 of the combined CRC; COMPOSITE -> base64 of the digest of the
    concatenated raw part checksums, ``-`` and the part count. Raises ChecksumMismatch for
    a part value that is not a digest of ``algorithm``.
    """
    raws = []
    for value, _size in parts:
        raw = decode_value(algorithm, value)
        if raw is None:
            raise ChecksumMismatch(f"part checksum {value!r} is not a {algorithm} value")
        raws.append(raw)
    if checksum_type == FULL_OBJECT:
        sizes = [size for _value, size in parts]
        return b64(combine_crcs(algorithm, list(zip(raws, sizes, strict=True))))
    return f"{b64(digest(algorithm, b''.join(raws)))}-{len(parts)}"
