"""The scale benchmark's objects: bucket, key and size of object ``i``, derived from ``i`` alone.

Nothing about the million objects is kept in memory: the fill, the GET probe and the listing
probes all regenerate what they need from the index. Layout:

- even indexes go to bucket ``big`` (500,000 keys at a million objects), in a deep prefix tree
  ``org/team/d{0-9}/e{0-4}/f{0000-0999}/{j}``: ten and five ways at the top levels, a wide
  fan-out of 1,000 at the ``f`` level (``org/team/d0/e0/`` is the wide prefix the delimiter
  listing reads), about ten leaves under each ``f`` prefix at the end;
- odd indexes spread over four flatter buckets ``flat0``-``flat3`` (``logs/{day}/{i}``).

Sizes: 95% 1-4 KiB, 4.9% 16-64 KiB, 0.1% 1-4 MiB (about 7 GB at a million objects).
"""

from __future__ import annotations

import hashlib
import random

BIG = "big"
FLAT = tuple(f"flat{n}" for n in range(4))
PROBE = "probe"  # the PUT probe and the 100 differences write here, outside the fill
BUCKETS = (BIG, *FLAT, PROBE)
WIDE_PREFIX = "org/team/d0/e0/"
KIB, MIB = 1024, 1024 * 1024


def _hash(index: int) -> int:
    return int.from_bytes(hashlib.blake2b(index.to_bytes(8, "big"), digest_size=8).digest())


def big_key(j: int) -> str:
    """The ``j``-th key of bucket ``big``."""
    return f"org/team/d{j % 10}/e{(j // 10) % 5}/f{(j // 50) % 1000:04d}/{j:07d}"


def location(index: int) -> tuple[str, str]:
    """(bucket, key) of fill object ``index``."""
    if index % 2 == 0:
        return BIG, big_key(index // 2)
    odd = index // 2
    return FLAT[odd % 4], f"logs/{(odd // 4) % 365:03d}/{odd:08d}"


def size(index: int) -> int:
    h = _hash(index)
    tier, spread = h % 10_000, h >> 16
    if tier < 10:
        return MIB + spread % (3 * MIB)
    if tier < 500:
        return 16 * KIB + spread % (48 * KIB)
    return KIB + spread % (3 * KIB)


def is_small(index: int) -> bool:
    return size(index) <= 4 * KIB


def big_keys(objects: int) -> list[str]:
    """Bucket ``big``'s keys once ``objects`` fill objects are stored, in listing order."""
    return sorted(big_key(j) for j in range((objects + 1) // 2))


def small_indexes(objects: int, count: int, seed: int) -> list[int]:
    """``count`` distinct pseudo-random small objects among the first ``objects`` (for GETs:
    distinct, so that after a restart every GET misses the node's cache at any store size)."""
    rng = random.Random(seed)
    picked: set[int] = set()
    while len(picked) < count:
        index = rng.randrange(objects)
        if is_small(index):
            picked.add(index)
    ordered = sorted(picked)
    rng.shuffle(ordered)
    return ordered
