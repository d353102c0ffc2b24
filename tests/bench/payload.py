"""Deterministic object contents, so every byte a GET returns can be checked.

Keeping 32 x 64 MiB of expected data in memory is not an option, so an object is derived from
(seed, key): it is cut into 1 MiB segments, each one a 16-byte stamp naming (seed, key, segment
index) followed by the matching slice of one shared 1 MiB random block. The stamp makes every
segment of every object distinct (a server that returns the wrong object, or segments in the
wrong order, fails the check); the shared block keeps generation and checking at memcmp speed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

SEGMENT = 1 << 20
STAMP_LEN = 16


def make_block(seed: int) -> bytes:
    """The shared random block; random bytes so nothing on the way can compress them."""
    return random.Random(seed).randbytes(SEGMENT)


def stamp(seed: int, key: str, index: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{key}:{index}".encode(), digest_size=STAMP_LEN).digest()


class VerificationError(Exception):
    """A GET returned bytes other than those PUT."""


@dataclass
class Payload:
    """Generates and checks objects of a given seed; one instance per benchmark run."""

    seed: int
    block: bytes = field(init=False, repr=False)
    _view: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.block = make_block(self.seed)
        self._view = memoryview(self.block)

    def segment_lengths(self, size: int) -> Iterator[int]:
        for start in range(0, size, SEGMENT):
            yield min(SEGMENT, size - start)

    def pieces(self, key: str, size: int) -> Iterator[bytes | memoryview]:
        """The object's bytes as (stamp, block slice) pairs; no per-object copy is made."""
        for index, length in enumerate(self.segment_lengths(size)):
            head = stamp(self.seed, key, index)
            yield head[:length]
            if length > STAMP_LEN:
                yield self._view[STAMP_LEN:length]

    def check_segment(self, key: str, index: int, data: bytes, expected_len: int) -> None:
        """Raise unless ``data`` is exactly segment ``index`` of ``key``.

        ``startswith``/``endswith`` compare in place, so a 1 MiB check costs one memcmp and
        no slice copy.
        """
        if len(data) != expected_len:
            raise VerificationError(
                f"{key}: segment {index} has {len(data)} bytes, expected {expected_len}"
            )
        head = stamp(self.seed, key, index)[:expected_len]
        if not data.startswith(head):
            raise VerificationError(f"{key}: segment {index} stamp mismatch")
        if expected_len > STAMP_LEN and not data.endswith(self._view[STAMP_LEN:expected_len]):
            raise VerificationError(f"{key}: segment {index} body mismatch")
