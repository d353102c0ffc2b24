"""What replication uses of the store, as a structural type.

``storage.sync.site.SyncSite`` (the replication side of a Store) satisfies it; naming only these
methods keeps replication's reach into storage explicit and lets unit tests use a small in-memory
fake instead of a data dir.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from storage.clock import Clock
from storage.digest import KeyFacts, Leaf
from storage.hlc import HybridClock
from storage.sync.apply import ApplyResult
from storage.sync.bootstrap_state import BootstrapRecord, Position
from storage.sync.feed import Change
from storage.sync.peer_stats import Backlog


class ReplicaStore(Protocol):
    node_id: str
    clock: HybridClock
    time_source: Clock  # wall and monotonic time (storage/clock.py); ``clock`` is the HLC

    async def changes_after(
        self, after_seq: int, limit: int, exclude_origin: str | None
    ) -> list[Change]: ...

    async def last_seq(self) -> int: ...

    async def read_chunk_by_hash(self, digest: bytes) -> bytes | None: ...

    async def missing_chunks(self, digests: Iterable[bytes]) -> set[bytes]: ...

    async def store_chunk(self, data: bytes) -> None: ...

    async def receive_chunk(self, data: bytes) -> None: ...

    async def apply_remote(
        self, peer: str, changes: list[Change], cursor: int, max_skew_ms: int
    ) -> ApplyResult: ...

    async def get_cursor(self, peer: str, direction: str) -> int: ...

    def repulls_own_changes(self, peer: str) -> bool: ...

    async def own_changes_repulled(self, peer: str) -> None: ...

    async def set_cursor(self, peer: str, direction: str, seq: int) -> None: ...

    async def repl_backlog(self, after_seq: int, exclude_origin: str | None) -> Backlog: ...

    async def snapshot_page(
        self, after: Position | None, limit: int
    ) -> tuple[list[Change], Position | None]: ...

    async def count_versions(self) -> int: ...

    async def digest_node(self, prefix: str) -> bytes: ...

    async def digest_children(self, prefix: str) -> dict[str, bytes]: ...

    async def digest_leaves(self, prefix: str) -> list[Leaf]: ...

    async def key_facts(self, bucket: str, key: str) -> KeyFacts: ...

    async def facts_page(self, after: tuple[str, str] | None, keys: int) -> list[KeyFacts]: ...

    async def purge_cutoff(self) -> int: ...


class BootstrapStore(ReplicaStore, Protocol):
    """What ``lakenode repl bootstrap`` needs of the new site's store besides pulling."""

    async def is_empty(self) -> bool: ...

    async def bootstrap_record(self) -> BootstrapRecord | None: ...

    async def finished_bootstrap(self) -> BootstrapRecord | None: ...

    async def apply_snapshot_page(
        self, changes: list[Change], record: BootstrapRecord, max_skew_ms: int
    ) -> ApplyResult: ...

    async def finish_bootstrap(self, record: BootstrapRecord) -> None: ...
