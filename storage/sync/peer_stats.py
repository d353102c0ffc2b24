"""Replication facts read from disk for status and metrics; counters that survive restarts.

Everything here is derived from, or kept in, the catalog, so a restarted node reports the same
numbers as before it stopped:

* ``backlog(after, exclude_origin)``: how many changes of this node's log lie after a seq
  (leaving out one origin), their total size and the oldest HLC among them. With ``after`` a
  peer's acknowledged position it is what that peer still lacks of this node's log.
* ``cursor_rows``: every ``peer_cursors`` row with the time it last moved.
* per-peer counters, one JSON row ``repl_counters:<peer>`` in ``meta``: conflicts and clock
  skew rejections are added **in the transaction that applies the batch** (see
  :class:`CountedApply`), so they are exact; bytes and apply errors are added by the node
  after each pull round (a crash loses at most the increments of the last second).
* the last ``repl validate`` outcome per peer: ``repl_validate:<peer>``.
* the node id last seen answering at each configured peer URL: ``repl_peer_url:<url>``, so
  a restarted node names a peer it cannot reach yet by its id, not its URL.
* bootstrap progress per peer: ``repl_bootstrap_progress:<peer>`` holding a ratio in [0, 1],
  written by the bootstrap job.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from storage import catalog
from storage.commit import Outcome
from storage.hlc import Timestamp
from storage.sync.apply import ApplyRemote, ApplyResult

COUNTERS_PREFIX: Final = "repl_counters:"
VALIDATE_PREFIX: Final = "repl_validate:"
BOOTSTRAP_PREFIX: Final = "repl_bootstrap_progress:"
PEER_URL_PREFIX: Final = "repl_peer_url:"


@dataclass(frozen=True)
class Backlog:
    ops: int = 0
    bytes: int = 0
    oldest_hlc: int | None = None  # None when there is nothing pending


@dataclass(frozen=True)
class CursorRow:
    peer: str
    direction: str
    seq: int
    updated_ms: int


@dataclass
class PeerCounters:
    conflicts: int = 0
    conditional_conflicts: int = 0  # of the conflicts, those involving a conditional write
    skew_rejections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    apply_errors: dict[str, int] = field(default_factory=dict)

    def is_zero(self) -> bool:
        return not (
            self.conflicts
            or self.conditional_conflicts
            or self.skew_rejections
            or self.bytes_sent
            or self.bytes_received
            or any(self.apply_errors.values())
        )

    def add(self, other: PeerCounters) -> None:
        self.conflicts += other.conflicts
        self.conditional_conflicts += other.conditional_conflicts
        self.skew_rejections += other.skew_rejections
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        for reason, count in other.apply_errors.items():
            self.apply_errors[reason] = self.apply_errors.get(reason, 0) + count

    @classmethod
    def from_json(cls, text: str) -> PeerCounters:
        try:
            document = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(document, dict):
            return cls()
        errors = document.get("apply_errors")
        return cls(
            conflicts=_count(document.get("conflicts")),
            conditional_conflicts=_count(document.get("conditional_conflicts")),
            skew_rejections=_count(document.get("skew_rejections")),
            bytes_sent=_count(document.get("bytes_sent")),
            bytes_received=_count(document.get("bytes_received")),
            apply_errors={str(k): _count(v) for k, v in errors.items()}
            if isinstance(errors, dict)
            else {},
        )


@dataclass(frozen=True)
class ValidateRecord:
    time_ms: int
    differences: int
    url: str


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


# ---- reads ------------------------------------------------------------------------------------


def backlog(conn: sqlite3.Connection, after_seq: int, exclude_origin: str | None) -> Backlog:
    ops, size, oldest = conn.execute(
        "SELECT count(*), coalesce(sum(size), 0), min(hlc) FROM changes"
        " WHERE seq > ? AND origin != ?",
        (after_seq, exclude_origin or ""),
    ).fetchone()
    return Backlog(int(ops), int(size), None if oldest is None else int(oldest))


def cursor_rows(conn: sqlite3.Connection) -> list[CursorRow]:
    rows = conn.execute(
        "SELECT peer, direction, seq, updated_ms FROM peer_cursors ORDER BY peer, direction"
    ).fetchall()
    return [CursorRow(str(p), str(d), int(s), int(u)) for p, d, s, u in rows]


def read_counters(conn: sqlite3.Connection) -> dict[str, PeerCounters]:
    return {
        peer: PeerCounters.from_json(text)
        for peer, text in catalog.read_meta_prefixed(conn, COUNTERS_PREFIX).items()
    }


def read_validates(conn: sqlite3.Connection) -> dict[str, ValidateRecord]:
    records = {}
    for peer, text in catalog.read_meta_prefixed(conn, VALIDATE_PREFIX).items():
        try:
            document = json.loads(text)
            records[peer] = ValidateRecord(
                int(document["time_ms"]), int(document["differences"]), str(document["url"])
            )
        except (ValueError, KeyError, TypeError):
            continue
    return records


def read_bootstrap_progress(conn: sqlite3.Connection) -> dict[str, float]:
    progress = {}
    for peer, text in catalog.read_meta_prefixed(conn, BOOTSTRAP_PREFIX).items():
        try:
            progress[peer] = min(1.0, max(0.0, float(text)))
        except ValueError:
            continue
    return progress


def read_peer_urls(conn: sqlite3.Connection) -> dict[str, str]:
    return catalog.read_meta_prefixed(conn, PEER_URL_PREFIX)


# ---- writes -----------------------------------------------------------------------------------


def add_counters(conn: sqlite3.Connection, peer: str, delta: PeerCounters) -> None:
    name = COUNTERS_PREFIX + peer
    counters = PeerCounters.from_json(catalog.read_meta(conn, name) or "{}")
    counters.add(delta)
    catalog.write_meta(conn, name, json.dumps(asdict(counters), sort_keys=True))


def record_validate(conn: sqlite3.Connection, peer: str, record: ValidateRecord) -> None:
    catalog.write_meta(conn, VALIDATE_PREFIX + peer, json.dumps(asdict(record)))


@dataclass(frozen=True)
class AddCounters:
    peer: str
    delta: PeerCounters

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        add_counters(conn, self.peer, self.delta)
        return Outcome(None)


@dataclass(frozen=True)
class CountedApply:
    """A remote batch and its conflict/skew counts, in one transaction (exact across crashes)."""

    inner: ApplyRemote

    def touched(self) -> tuple[str, str | None]:
        return self.inner.touched()

    @property
    def may_set_tags(self) -> bool:
        return self.inner.may_set_tags

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[ApplyResult]:
        outcome = self.inner.apply(conn, stamp)
        result = outcome.result
        if result.conflicts or result.skew_rejected:
            delta = PeerCounters(
                conflicts=result.conflicts,
                conditional_conflicts=result.conditional_conflicts,
                skew_rejections=result.skew_rejected,
            )
            add_counters(conn, self.inner.peer, delta)
        return outcome


@dataclass(frozen=True)
class RememberPeerUrl:
    url: str
    node_id: str

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.write_meta(conn, PEER_URL_PREFIX + self.url, self.node_id)
        return Outcome(None)
