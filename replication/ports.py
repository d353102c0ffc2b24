"""What replication uses of the store, as a structural type.

``storage.store.Store`` satisfies it; naming only these methods keeps replication's reach into
storage explicit and lets unit tests use a small in-memory fake instead of a data dir.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from storage.digest import Leaf
from storage.hlc import HybridClock
from storage.replica import ApplyResult, Change


class ReplicaStore(Protocol):
    node_id: str
    clock: HybridClock

    async def changes_after(
        self, after_seq: int, limit: int, exclude_origin: str | None
    ) -> list[Change]: ...

    async def last_seq(self) -> int: ...

    async def read_chunk_by_hash(self, digest: bytes) -> bytes | None: ...

    async def missing_chunks(self, digests: Iterable[bytes]) -> set[bytes]: ...

    async def store_chunk(self, data: bytes) -> None: ...

    async def apply_remote(
        self, peer: str, changes: list[Change], cursor: int, max_skew_ms: int
    ) -> ApplyResult: ...

    async def get_cursor(self, peer: str, direction: str) -> int: ...

    async def set_cursor(self, peer: str, direction: str, seq: int) -> None: ...

    async def digest_node(self, prefix: str) -> bytes: ...

    async def digest_children(self, prefix: str) -> dict[str, bytes]: ...

    async def digest_leaves(self, prefix: str) -> list[Leaf]: ...
