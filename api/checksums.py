"""Incremental checksums for S3's additional checksums (``x-amz-checksum-*``).

Public API:

* :data:`ALGORITHMS` - the algorithms this node computes, in AWS's spelling.
* :func:`new_checksum` - a fresh :class:`Checksum` (``update(data)``, ``b64digest()``).
* :func:`header_name` / :func:`algorithm_from_header` - map between an algorithm and its
  ``x-amz-checksum-<alg>`` header (also the name of the aws-chunked trailer).
* :func:`verify_checksum` - compare a client's base64 value with a computed checksum,
  raising ``BadDigest`` (or ``InvalidRequest`` for a value that cannot be a digest).

The wire format is AWS's: base64 of the big-endian 4-byte CRC, or of the raw SHA digest.
CRC64NVME (the newest SDK default for some calls) is not offered: the only fast
implementation is in awscrt, which is not a dependency, and a pure-Python table CRC runs at
a few MB/s. Asking for it fails loudly with ``InvalidRequest`` instead of skipping the check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable
from typing import Final, Protocol

import crc32c

from api.errors import S3Error

ALGORITHMS: Final = ("CRC32", "CRC32C", "SHA1", "SHA256")

_HEADER_PREFIX: Final = "x-amz-checksum-"
# Headers that share the prefix but carry no checksum value.
_NOT_CHECKSUM_HEADERS: Final = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}
)
_DIGEST_SIZE: Final = {"CRC32": 4, "CRC32C": 4, "SHA1": 20, "SHA256": 32}


class Checksum(Protocol):
    """A running checksum over a byte stream."""

    algorithm: str

    def update(self, data: bytes) -> None: ...

    def b64digest(self) -> str: ...


class _Crc:
    """CRC32 (zlib) or CRC32C (crc32c package); both run in C at memory speed."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._value = 0

    def update(self, data: bytes) -> None:
        if self.algorithm == "CRC32":
            self._value = zlib.crc32(data, self._value)
        else:
            self._value = crc32c.crc32c(data, value=self._value)

    def b64digest(self) -> str:
        return base64.b64encode(self._value.to_bytes(4, "big")).decode("ascii")


class _Sha:
    """SHA-1 or SHA-256 via hashlib."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._hash = hashlib.sha1() if algorithm == "SHA1" else hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def b64digest(self) -> str:
        return base64.b64encode(self._hash.digest()).decode("ascii")


def normalize_algorithm(algorithm: str) -> str:
    """AWS's spelling of a supported algorithm (input is case-insensitive), else InvalidRequest."""
    name = algorithm.strip().upper()
    if name not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            f"Value for x-amz-checksum-algorithm header is invalid: {algorithm!r} is not "
            f"supported (supported: {', '.join(ALGORITHMS)}).",
        )
    return name


def new_checksum(algorithm: str) -> Checksum:
    """A fresh checksum for ``algorithm`` (e.g. ``"CRC32"``); unsupported -> InvalidRequest."""
    name = normalize_algorithm(algorithm)
    if name in ("CRC32", "CRC32C"):
        return _Crc(name)
    return _Sha(name)


def header_name(algorithm: str) -> str:
    """``"CRC32"`` -> ``"x-amz-checksum-crc32"`` (also the aws-chunked trailer name)."""
    return _HEADER_PREFIX + normalize_algorithm(algorithm).lower()


def algorithm_from_header(name: str) -> str | None:
    """The upper-case algorithm named by an ``x-amz-checksum-<alg>`` header, else None.

    Unsupported algorithms (``x-amz-checksum-crc64nvme``) are returned too, so that the
    caller's :func:`new_checksum` rejects them rather than the value being silently ignored.
    """
    lower = name.strip().lower()
    if not lower.startswith(_HEADER_PREFIX) or lower in _NOT_CHECKSUM_HEADERS:
        return None
    suffix = lower[len(_HEADER_PREFIX) :]
    return suffix.upper() if suffix else None


def verify_checksum(checksum: Checksum, expected_b64: str) -> None:
    """Raise unless ``expected_b64`` (the client's value) equals the computed checksum.

    A value that is not base64 of a digest of the right size is ``InvalidRequest`` (the
    client sent garbage); a well-formed value that differs is ``BadDigest`` (the data changed).
    """
    algorithm = checksum.algorithm
    value = expected_b64.strip()
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != _DIGEST_SIZE[algorithm]:
        raise S3Error(
            "InvalidRequest",
            f"Value for {header_name(algorithm)} header is invalid.",
        )
    if raw != base64.b64decode(checksum.b64digest()):
        raise S3Error(
            "BadDigest",
            f"The {algorithm} you specified did not match the calculated checksum.",
        )


def checksum_elements(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """XML elements (``ChecksumCRC32``...) for the stored ``x-amz-checksum-*`` values among
    ``headers``: how CompleteMultipartUpload, ListParts and GetObjectAttributes show them."""
    elements = []
    for name, value in headers:
        algorithm = algorithm_from_header(name)
        if algorithm in ALGORITHMS:
            elements.append((f"Checksum{algorithm}", value))
    return elements
