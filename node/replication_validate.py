"""Validate: compare this site with a peer through their Merkle digests, and keep the outcome.

Shared by ``lakenode repl validate`` (node/cli/repl_validate.py, from outside the node) and
the console's "Validate now" (node/console/replication.py, inside the node's primary worker),
so both run the same comparison and record its outcome the same way: ``repl status``, the
metrics (``lakenode_repl_validate_mismatches``) and the console read that record.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from replication.client import PeerClient, RemoteDigests
from replication.validate import (
    Difference,
    DigestSource,
    WalkStats,
    compare,
    compare_deep,
    describe,
    explain,
)
from storage.commit import Outcome
from storage.hlc import Timestamp, wall_clock_ms
from storage.sync.peer_stats import ValidateRecord, record_validate


@dataclass(frozen=True)
class DifferenceLine:
    """One key the two sites disagree on, in words: what each side holds."""

    bucket: str
    key: str
    here: str
    peer: str


@dataclass
class PeerValidation:
    """The outcome of one comparison with one peer."""

    url: str
    peer_id: str
    differences: list[Difference]
    stats: WalkStats

    def lines(self) -> list[DifferenceLine]:
        return [difference_line(difference) for difference in self.differences]

    def record(self) -> ValidateRecord:
        """What `repl status` and the metrics read back (the time is now)."""
        return ValidateRecord(time_ms=wall_clock_ms(), differences=len(self.differences),
                              url=self.url)  # fmt: skip


def difference_line(difference: Difference) -> DifferenceLine:
    return DifferenceLine(
        difference.bucket,
        difference.key,
        describe(difference.local_facts),
        describe(difference.remote_facts),
    )


async def compare_sites(
    local: DigestSource, remote: DigestSource, deep: bool
) -> tuple[list[Difference], WalkStats]:
    """The differences (each with what both sides hold) and the walk's cost. ``deep`` compares
    every key's chunk lists instead of the Merkle tree."""
    if deep:
        return await compare_deep(local, remote)
    differences, stats = await compare(local, remote)
    return await explain(differences, local, remote, stats), stats


async def validate_with(
    local: DigestSource, peer: PeerClient, *, deep: bool = False
) -> PeerValidation:
    """Compare ``local`` with the peer ``peer`` talks to. The peer's node id (the key of the
    record) is asked first, so a peer that cannot be reached fails before any walk."""
    peer_id = (await peer.info()).node_id
    differences, stats = await compare_sites(local, RemoteDigests(peer), deep)
    return PeerValidation(peer.base_url, peer_id, differences, stats)


@dataclass(frozen=True)
class RecordValidate:
    """A storage mutation keeping a validate outcome, for a node that holds its store (the
    CLI beside a stopped or running node writes the same row with :func:`record_validate`)."""

    peer: str
    record: ValidateRecord

    def touched(self) -> tuple[str, str | None]:
        return "", ""  # no bucket or key: a ``meta`` row

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        record_validate(conn, self.peer, self.record)
        return Outcome(None)
