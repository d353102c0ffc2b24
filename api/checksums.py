"""Incremental checksums for S3's additional checksums (``x-amz-checksum-*``).

Public API:

* :data:`ALGORITHMS` - the algorithms this node computes, in AWS's spelling: CRC32, CRC32C,
  CRC64NVME (the default of current AWS SDKs, pyarrow's and polars' included), SHA1, SHA256.
* :func:`new_checksum` - a fresh :class:`Checksum` (``update(data)``, ``b64digest()``).
* :func:`header_name` / :func:`algorithm_from_header` - map between an algorithm and its
  ``x-amz-checksum-<alg>`` header (also the name of the aws-chunked trailer).
* :func:`verify_checksum` - compare a client's base64 value with a computed checksum,
  raising ``BadDigest`` (or ``InvalidRequest`` for a value that cannot be a digest).
* :func:`multipart_checksum_type` - the checksum type (COMPOSITE / FULL_OBJECT) of a new
  multipart upload, with AWS's errors for combinations it refuses.

The wire format is AWS's: base64 of the big-endian CRC (4 bytes, 8 for CRC64NVME), or of the
raw SHA digest. The arithmetic lives in :mod:`storage.checksums` (awscrt for every CRC, so
the CRC32C of a part here and the CRC combination at completion are one implementation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from api.errors import S3Error
from storage.checksums import (
    ALGORITHMS,
    COMPOSITE,
    FULL_OBJECT,
    MULTIPART_TYPES,
    RunningDigest,
    b64,
    decode_value,
    default_multipart_type,
)

__all__ = ["ALGORITHMS", "COMPOSITE", "FULL_OBJECT"]

_HEADER_PREFIX: Final = "x-amz-checksum-"
TYPE_HEADER: Final = "x-amz-checksum-type"
# Headers that share the prefix but carry no checksum value.
_NOT_CHECKSUM_HEADERS: Final = frozenset(
    {"x-amz-checksum-algorithm", TYPE_HEADER, "x-amz-checksum-mode"}
)
CHECKSUM_TYPES: Final = (COMPOSITE, FULL_OBJECT)


class Checksum(Protocol):
    """A running checksum over a byte stream."""

    algorithm: str

    def update(self, data: bytes) -> None: ...

    def b64digest(self) -> str: ...


class _Running:
    """Any supported algorithm over :class:`storage.checksums.RunningDigest`."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._digest = RunningDigest(algorithm)

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def b64digest(self) -> str:
        return b64(self._digest.digest())


def normalize_algorithm(algorithm: str, header: str = "x-amz-checksum-algorithm") -> str:
    """AWS's spelling of a supported algorithm (input is case-insensitive), else InvalidRequest."""
    name = algorithm.strip().upper()
    if name not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            f"Value for {header} header is invalid: {algorithm!r} is not "
            f"supported (supported: {', '.join(ALGORITHMS)}).",
        )
    return name


def new_checksum(algorithm: str) -> Checksum:
    """A fresh checksum for ``algorithm`` (e.g. ``"CRC64NVME"``); unsupported -> InvalidRequest."""
    return _Running(normalize_algorithm(algorithm))


def header_name(algorithm: str) -> str:
    """``"CRC32"`` -> ``"x-amz-checksum-crc32"`` (also the aws-chunked trailer name)."""
    return _HEADER_PREFIX + normalize_algorithm(algorithm).lower()


def algorithm_from_header(name: str) -> str | None:
    """The upper-case algorithm named by an ``x-amz-checksum-<alg>`` header, else None.

    Unknown algorithms (``x-amz-checksum-md5``) are returned too, so that the caller's
    :func:`new_checksum` rejects them rather than the value being silently ignored.
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
    if decode_value(algorithm, expected_b64) is None:
        raise S3Error("InvalidRequest", f"Value for {header_name(algorithm)} header is invalid.")
    if decode_value(algorithm, expected_b64) != decode_value(algorithm, checksum.b64digest()):
        raise bad_digest(algorithm)


def bad_digest(algorithm: str) -> S3Error:
    return S3Error(
        "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
    )


def multipart_checksum_type(algorithm: str, requested: str | None) -> str:
    """The checksum type of a new multipart upload (CreateMultipartUpload's
    ``x-amz-checksum-type``): the algorithm's default when none is asked for; a type the
    algorithm cannot have (FULL_OBJECT with SHA, COMPOSITE with CRC64NVME) is refused."""
    if requested is None:
        return default_multipart_type(algorithm)
    checksum_type = requested.strip().upper()
    if checksum_type not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", f"Value for {TYPE_HEADER} header is invalid.")
    if checksum_type not in MULTIPART_TYPES[algorithm]:
        raise S3Error(
            "InvalidRequest",
            f"The {checksum_type} checksum type cannot be used with the "
            f"{algorithm.lower()} checksum algorithm.",
        )
    return checksum_type


def checksum_elements(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """XML elements (``ChecksumCRC32``...) for the stored ``x-amz-checksum-*`` values among
    ``headers``: how CompleteMultipartUpload, ListParts and GetObjectAttributes show them."""
    elements = []
    for name, value in headers:
        algorithm = algorithm_from_header(name)
        if algorithm in ALGORITHMS:
            elements.append((f"Checksum{algorithm}", value))
    return elements


def stored_checksum_type(headers: Iterable[tuple[str, str]]) -> str | None:
    """The checksum type of a stored object: its ``x-amz-checksum-type`` header, FULL_OBJECT
    for an object with a checksum but no type (a single PUT), None without a checksum."""
    pairs = list(headers)
    if not checksum_elements(pairs):
        return None
    return dict(pairs).get(TYPE_HEADER, FULL_OBJECT)
