"""Compare two sites' Merkle digests (storage/digest.py) and list what differs.

Both sides answer the same three questions (a local store's SyncSite does directly; a peer
through /_lakenode/repl/digest): a node's XOR digest, a node's 16 children, the leaves under a
deepest node. The walk descends only into children whose digests differ, so a matching site
costs one comparison and each difference costs at most DEPTH x 16 node reads plus one leaf
range. The nodes of one level, and then the keys to explain, are asked for concurrently
(``WALK_CONCURRENCY``), both sides at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from storage.digest import DEPTH, KeyFacts, Leaf, VersionFact
from storage.manifest import Kind

R = TypeVar("R")
# Questions in flight at once (each to both sides): a walk is a few round trips per level of
# the tree instead of one per node, and a difference costs about one request's time, not
# DEPTH x 2 (100 differences at a million objects: 15 s one at a time).
WALK_CONCURRENCY = 16


class DigestSource(Protocol):
    async def digest_node(self, prefix: str) -> bytes: ...

    async def digest_children(self, prefix: str) -> dict[str, bytes]: ...

    async def digest_leaves(self, prefix: str) -> list[Leaf]: ...

    async def key_facts(self, bucket: str, key: str) -> KeyFacts: ...

    async def facts_page(self, after: tuple[str, str] | None, keys: int) -> list[KeyFacts]: ...

    async def purge_cutoff(self) -> int: ...


@dataclass(frozen=True)
class Difference:
    bucket: str
    key: str
    local: bytes | None  # the key's leaf digest here, None if the key is absent here
    remote: bytes | None
    local_facts: KeyFacts | None = None  # what each side holds (filled in by explain)
    remote_facts: KeyFacts | None = None


@dataclass
class WalkStats:
    nodes_compared: int = 0
    leaf_ranges_compared: int = 0
    purged_tombstones: int = 0  # differences explained by tombstone GC on one side
    keys_compared_deep: int = 0


async def compare(local: DigestSource, remote: DigestSource) -> tuple[list[Difference], WalkStats]:
    stats = WalkStats(nodes_compared=1)
    ours, theirs = await asyncio.gather(local.digest_node(""), remote.digest_node(""))
    if ours == theirs:
        return [], stats
    differences: list[Difference] = []
    limit = asyncio.Semaphore(WALK_CONCURRENCY)
    level = [""]  # the prefixes whose digests differ, all of one length
    while level and len(level[0]) < DEPTH:
        pairs = await asyncio.gather(
            *(_both(limit, local.digest_children, remote.digest_children, p) for p in level)
        )
        stats.nodes_compared += sum(len(mine) for mine, _ in pairs)
        level = [
            child for mine, yours in pairs for child in mine if mine[child] != yours.get(child)
        ]
    leaf_pairs = await asyncio.gather(
        *(_both(limit, local.digest_leaves, remote.digest_leaves, p) for p in level)
    )
    stats.leaf_ranges_compared += len(leaf_pairs)
    for mine_leaves, their_leaves in leaf_pairs:
        differences.extend(_leaf_differences(mine_leaves, their_leaves))
    differences.sort(key=lambda d: (d.bucket, d.key))
    return differences, stats


async def _both(
    limit: asyncio.Semaphore,
    ask_local: Callable[[str], Awaitable[R]],
    ask_remote: Callable[[str], Awaitable[R]],
    prefix: str,
) -> tuple[R, R]:
    """One question about ``prefix`` to both sides at once, within the walk's concurrency."""
    async with limit:
        mine, theirs = await asyncio.gather(ask_local(prefix), ask_remote(prefix))
    return mine, theirs


def _leaf_differences(ours: list[Leaf], theirs: list[Leaf]) -> list[Difference]:
    mine = {(leaf.bucket, leaf.key): leaf.leaf for leaf in ours}
    yours = {(leaf.bucket, leaf.key): leaf.leaf for leaf in theirs}
    return [
        Difference(bucket, key, mine.get((bucket, key)), yours.get((bucket, key)))
        for bucket, key in sorted(mine.keys() | yours.keys())
        if mine.get((bucket, key)) != yours.get((bucket, key))
    ]


async def explain(
    differences: list[Difference], local: DigestSource, remote: DigestSource, stats: WalkStats
) -> list[Difference]:
    """Attach what each side holds; drop differences that are only tombstone GC timing.

    Sites purge old tombstones at their own pace (storage/sync/tombstone_gc.py): a tombstone one
    side still holds and the other has purged is not a disagreement when it is older than
    the purging side's recorded cutoff.
    """
    local_cutoff, remote_cutoff = await local.purge_cutoff(), await remote.purge_cutoff()
    limit = asyncio.Semaphore(WALK_CONCURRENCY)

    async def facts(difference: Difference) -> tuple[KeyFacts, KeyFacts]:
        async with limit:
            mine, theirs = await asyncio.gather(
                local.key_facts(difference.bucket, difference.key),
                remote.key_facts(difference.bucket, difference.key),
            )
        return mine, theirs

    kept = []
    found = await asyncio.gather(*(facts(difference) for difference in differences))
    for difference, (mine, theirs) in zip(differences, found, strict=True):
        if _only_purged_tombstones(mine, theirs, local_cutoff, remote_cutoff):
            stats.purged_tombstones += 1
            continue
        kept.append(replace(difference, local_facts=mine, remote_facts=theirs))
    return kept


def _only_purged_tombstones(
    mine: KeyFacts, theirs: KeyFacts, my_cutoff: int, their_cutoff: int
) -> bool:
    only_mine = set(_identity(mine)) - set(_identity(theirs))
    only_theirs = set(_identity(theirs)) - set(_identity(mine))
    return all(_purged(v, their_cutoff) for v in only_mine) and all(
        _purged(v, my_cutoff) for v in only_theirs
    )


def _identity(facts: KeyFacts) -> list[tuple[str, int, str, int, str]]:
    return [(v.version_id, v.hlc, v.origin, v.kind, v.etag) for v in facts.versions]


def _purged(version: tuple[str, int, str, int, str], cutoff: int) -> bool:
    return version[3] == Kind.TOMBSTONE and version[1] < cutoff


async def compare_deep(
    local: DigestSource, remote: DigestSource, page_keys: int = 500
) -> tuple[list[Difference], WalkStats]:
    """Every key of both sides, versions and chunk BLAKE3 lists included (cost: all keys)."""
    stats = WalkStats()
    local_cutoff, remote_cutoff = await local.purge_cutoff(), await remote.purge_cutoff()
    differences = []
    async for bucket, key, mine, theirs in _merge(local, remote, page_keys):
        stats.keys_compared_deep += 1
        if mine == theirs:
            continue
        mine = mine or KeyFacts(bucket, key, ())
        theirs = theirs or KeyFacts(bucket, key, ())
        same_chunks = _chunk_lists(mine) == _chunk_lists(theirs)
        if same_chunks and _only_purged_tombstones(mine, theirs, local_cutoff, remote_cutoff):
            stats.purged_tombstones += 1
            continue
        differences.append(
            Difference(
                bucket,
                key,
                None,
                None,
                mine if mine.versions else None,
                theirs if theirs.versions else None,
            )
        )
    return differences, stats


def _chunk_lists(facts: KeyFacts) -> dict[tuple[str, int, str], tuple[bytes, ...]]:
    return {(v.version_id, v.hlc, v.origin): v.chunks for v in facts.versions}


async def _merge(
    local: DigestSource, remote: DigestSource, page_keys: int
) -> AsyncIterator[tuple[str, str, KeyFacts | None, KeyFacts | None]]:
    """Both sides' keys in order, paired: (bucket, key, here or None, there or None)."""
    mine, theirs = _pages(local, page_keys), _pages(remote, page_keys)
    left, right = await anext(mine, None), await anext(theirs, None)
    while left is not None or right is not None:
        left_key = (left.bucket, left.key) if left else None
        right_key = (right.bucket, right.key) if right else None
        if right_key is None or (left_key is not None and left_key < right_key):
            assert left is not None
            yield left.bucket, left.key, left, None
            left = await anext(mine, None)
        elif left_key is None or right_key < left_key:
            assert right is not None
            yield right.bucket, right.key, None, right
            right = await anext(theirs, None)
        else:
            assert left is not None and right is not None
            yield left.bucket, left.key, left, right
            left, right = await anext(mine, None), await anext(theirs, None)


async def _pages(source: DigestSource, page_keys: int) -> AsyncIterator[KeyFacts]:
    after: tuple[str, str] | None = None
    while True:
        page = await source.facts_page(after, page_keys)
        for facts in page:
            yield facts
        if len(page) < page_keys:
            return
        after = (page[-1].bucket, page[-1].key)


def describe(facts: KeyFacts | None, limit: int = 3) -> str:
    """What one side holds of a key, for people: newest versions first."""
    if facts is None or not facts.versions:
        return "absent"
    newest = sorted(facts.versions, key=lambda v: (v.hlc, v.origin), reverse=True)
    shown = ", ".join(_describe_version(v) for v in newest[:limit])
    more = f" (+{len(newest) - limit} older)" if len(newest) > limit else ""
    return shown + more


_KIND_NAMES: dict[int, str] = {
    int(Kind.OBJECT): "object",
    int(Kind.DELETE_MARKER): "delete-marker",
    int(Kind.TOMBSTONE): "tombstone",
}


def _describe_version(version: VersionFact) -> str:
    kind = _KIND_NAMES.get(version.kind, f"kind-{version.kind}")
    etag = f" etag={version.etag}" if version.etag else ""
    return f"{kind} {version.version_id}@{version.hlc}/{version.origin}{etag}"
