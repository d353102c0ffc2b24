"""What replication still needs: the position every known peer has acknowledged.

Space reclamation (tombstone GC, change-log pruning, chunk GC) may only drop what every peer
already holds. A peer is *known* once it has a ``peer_cursors`` row (it pulled from us, we
pushed to it, or we pulled from it) or a remembered URL (``repl_peer_url:<url>`` in
``meta``). Its acknowledged position in our log is the larger of its ``acked`` cursor (it
asked for changes after that seq, so it durably applied them) and our ``push`` cursor for it.

The **replication horizon** is the smallest acknowledged position over known peers: every
change at or before it is held by every peer. With no peer known it is the last seq (a lone
node owes nothing to anyone; a site added later is bootstrapped from state, not from the log).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from storage import catalog
from storage.commit import Outcome
from storage.hlc import Timestamp
from storage.sync import peer_stats
from storage.sync.feed import last_seq

CONFIGURED_PEERS = "repl_configured_peers"  # meta: JSON list of the node's --peer URLs
ACKED = "acked"
PUSH = "push"


def known_peers(conn: sqlite3.Connection) -> set[str]:
    peers = {str(row[0]) for row in conn.execute("SELECT DISTINCT peer FROM peer_cursors")}
    identified = peer_stats.read_peer_urls(conn)
    peers.update(identified.values())
    # A configured peer never reached is named by its URL, which no cursor matches: its
    # acknowledged position is 0, so nothing it may need is reclaimed until it has caught up.
    peers.update(url for url in configured_peers(conn) if url not in identified)
    return peers


def configured_peers(conn: sqlite3.Connection) -> list[str]:
    text = catalog.read_meta(conn, CONFIGURED_PEERS)
    try:
        urls = json.loads(text) if text else []
    except ValueError:
        return []
    return [url for url in urls if isinstance(url, str)] if isinstance(urls, list) else []


@dataclass(frozen=True)
class RecordConfiguredPeers:
    """The running node's --peer URLs, kept on disk so that offline tools (chunk GC, tombstone
    GC) protect a configured peer that has not been reached yet, as the node does."""

    urls: tuple[str, ...]

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.write_meta(conn, CONFIGURED_PEERS, json.dumps(list(self.urls)))
        return Outcome(None)


def acknowledged_seq(conn: sqlite3.Connection, peer: str) -> int:
    row = conn.execute(
        "SELECT max(seq) FROM peer_cursors WHERE peer = ? AND direction IN (?, ?)",
        (peer, ACKED, PUSH),
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def forget_peer(conn: sqlite3.Connection, peer: str) -> int:
    """Drop what we remember of a peer removed for good (its cursors, URLs, counters), so it
    stops holding back the horizon. Returns the rows removed."""
    removed = conn.execute("DELETE FROM peer_cursors WHERE peer = ?", (peer,)).rowcount
    urls = [url for url, node in peer_stats.read_peer_urls(conn).items() if node == peer]
    for url in urls:
        removed += conn.execute(
            "DELETE FROM meta WHERE name = ?", (peer_stats.PEER_URL_PREFIX + url,)
        ).rowcount
    for prefix in (peer_stats.COUNTERS_PREFIX, peer_stats.VALIDATE_PREFIX):
        removed += conn.execute("DELETE FROM meta WHERE name = ?", (prefix + peer,)).rowcount
    return removed


def replication_horizon(conn: sqlite3.Connection, extra_peers: frozenset[str] = frozenset()) -> int:
    """The largest seq every known peer (and each of ``extra_peers``) has acknowledged."""
    peers = known_peers(conn) | extra_peers
    if not peers:
        return last_seq(conn)
    return min(acknowledged_seq(conn, peer) for peer in peers)
