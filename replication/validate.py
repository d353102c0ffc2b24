"""Compare two sites' Merkle digests (storage/digest.py) and list what differs.

Both sides answer the same three questions (a local Store does directly; a peer through
/_lakenode/repl/digest): a node's XOR digest, a node's 16 children, the leaves under a
deepest node. The walk descends only into children whose digests differ, so a matching site
costs one comparison and each difference costs at most DEPTH x 16 node reads plus one leaf
range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from storage.digest import DEPTH, Leaf


class DigestSource(Protocol):
    async def digest_node(self, prefix: str) -> bytes: ...

    async def digest_children(self, prefix: str) -> dict[str, bytes]: ...

    async def digest_leaves(self, prefix: str) -> list[Leaf]: ...


@dataclass(frozen=True)
class Difference:
    bucket: str
    key: str
    local: bytes | None  # the key's leaf digest here, None if the key is absent here
    remote: bytes | None


@dataclass
class WalkStats:
    nodes_compared: int = 0
    leaf_ranges_compared: int = 0


async def compare(local: DigestSource, remote: DigestSource) -> tuple[list[Difference], WalkStats]:
    stats = WalkStats(nodes_compared=1)
    if await local.digest_node("") == await remote.digest_node(""):
        return [], stats
    differences: list[Difference] = []
    frontier = [""]
    while frontier:
        prefix = frontier.pop()
        if len(prefix) == DEPTH:
            stats.leaf_ranges_compared += 1
            differences.extend(
                _leaf_differences(await local.digest_leaves(prefix),
                                  await remote.digest_leaves(prefix))
            )  # fmt: skip
            continue
        ours, theirs = await local.digest_children(prefix), await remote.digest_children(prefix)
        stats.nodes_compared += len(ours)
        frontier.extend(child for child in ours if ours[child] != theirs.get(child))
    differences.sort(key=lambda d: (d.bucket, d.key))
    return differences, stats


def _leaf_differences(ours: list[Leaf], theirs: list[Leaf]) -> list[Difference]:
    mine = {(leaf.bucket, leaf.key): leaf.leaf for leaf in ours}
    yours = {(leaf.bucket, leaf.key): leaf.leaf for leaf in theirs}
    return [
        Difference(bucket, key, mine.get((bucket, key)), yours.get((bucket, key)))
        for bucket, key in sorted(mine.keys() | yours.keys())
        if mine.get((bucket, key)) != yours.get((bucket, key))
    ]
