"""Per-peer replication status, read from disk: shared by metrics, the status route and CLI.

Two directions per peer, both computed from the data dirs, never from counters kept in memory:

* **backlog** (``backlog_ops``, ``backlog_bytes``, ``lag_seconds``): the changes of *our* log
  the peer has not acknowledged yet. The acknowledged position is the larger of the peer's
  ``acked`` cursor (recorded by our ``changes`` route when the peer pulls after SEQ) and our
  ``push`` cursor for it; the changes after it (leaving out the peer's own) are counted in our
  change log. Lag is the age of the oldest of them by HLC wall time (0 when none). This keeps
  growing while the peer is down, and is the same number after a restart of either side.
* **behind** (``behind_ops``...): the changes of the *peer's* log we have not applied: asked
  of the peer (``GET /_lakenode/repl/backlog?after=<our pull cursor>&exclude_origin=<us>``),
  so only known while the link is up; the status command and route show it.

Link state and clock offset are measurements (the last attempt / round trip); counters come
from the ``meta`` table (storage/sync/peer_stats.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from replication.client import PeerClient, PeerUnavailable, RetryPolicy, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState, identify_peer
from replication.routes import ACKNOWLEDGED
from storage.hlc import LOGICAL_BITS, wall_clock_ms
from storage.sync.peer_stats import PeerCounters, ValidateRecord
from storage.sync.site import SyncSite

PROBE_TIMEOUT_S: Final = 5.0
PROBE_RETRY: Final = RetryPolicy(attempts=1, total_s=PROBE_TIMEOUT_S)


@dataclass
class PeerReport:
    peer: str  # the peer's node id, or its URL until known
    url: str | None = None
    node_id: str | None = None
    link_up: bool | None = None
    clock_offset_s: float | None = None
    backlog_ops: int | None = None
    backlog_bytes: int | None = None
    lag_s: float | None = None
    behind_ops: int | None = None
    behind_bytes: int | None = None
    behind_lag_s: float | None = None
    last_success_ms: int | None = None
    last_error: str | None = None
    counters: PeerCounters = field(default_factory=PeerCounters)
    last_validate: ValidateRecord | None = None
    bootstrap_progress: float | None = None

    @property
    def in_sync(self) -> bool:
        """Nothing pending either way, the link up, and the last validate found no difference."""
        return (
            self.link_up is True
            and self.backlog_ops == 0
            and self.behind_ops == 0
            and self.last_validate is not None
            and self.last_validate.differences == 0
        )

    def to_json(self) -> dict[str, Any]:
        validate = self.last_validate
        return {
            "peer": self.peer,
            "url": self.url,
            "node_id": self.node_id,
            "link_up": self.link_up,
            "clock_offset_seconds": self.clock_offset_s,
            "lag_seconds": self.lag_s,
            "backlog_ops": self.backlog_ops,
            "backlog_bytes": self.backlog_bytes,
            "behind_ops": self.behind_ops,
            "behind_bytes": self.behind_bytes,
            "behind_lag_seconds": self.behind_lag_s,
            "last_success_ms": self.last_success_ms,
            "last_error": self.last_error,
            "conflicts": self.counters.conflicts,
            "skew_rejections": self.counters.skew_rejections,
            "apply_errors": dict(self.counters.apply_errors),
            "bytes_sent": self.counters.bytes_sent,
            "bytes_received": self.counters.bytes_received,
            "last_validate": None
            if validate is None
            else {"time_ms": validate.time_ms, "differences": validate.differences},
            "bootstrap_progress": self.bootstrap_progress,
            "in_sync": self.in_sync,
        }


def peer_state(row: Mapping[str, Any]) -> str:
    """A word or two for a peer's row (:meth:`PeerReport.to_json`): "in sync" only with
    nothing pending and a match. `lakenode repl status` and the console show this word."""
    if row.get("in_sync"):
        return "in sync"
    if row.get("link_up") is not True:
        return "down" if row.get("url") else "not configured"
    if row.get("backlog_ops") or row.get("behind_ops"):
        return "catching up"
    validate = row.get("last_validate")
    if not validate:
        return "not validated"
    return "differs" if validate.get("differences") else "pending"


def lag_seconds(oldest_hlc: int | None, now_ms: int) -> float:
    if oldest_hlc is None:
        return 0.0
    return max(0, now_ms - (oldest_hlc >> LOGICAL_BITS)) / 1000


async def local_reports(site: SyncSite, states: Sequence[PeerState]) -> list[PeerReport]:
    """One report per configured peer (``states``) and per peer that acknowledged our log."""
    now_ms = wall_clock_ms()
    rows = await site.peer_cursors()
    cursors = {(row.peer, row.direction): row for row in rows}
    counters = await site.repl_counters()
    validates = await site.validate_records()
    progress = await site.bootstrap_progress()
    named = await site.peer_urls()  # a peer not reached since a restart: its last known id
    reports: dict[str, PeerReport] = {}
    for state in states:
        node_id = state.node_id or named.get(state.url)
        reports.setdefault(
            node_id or state.url,
            PeerReport(
                peer=node_id or state.url,
                url=state.url,
                node_id=node_id,
                link_up=state.link_up,
                clock_offset_s=None
                if state.clock_offset_ms is None
                else state.clock_offset_ms / 1000,
                last_success_ms=state.last_success_ms,
                last_error=state.last_error,
            ),
        )
    for row in rows:
        known = row.peer in reports or row.peer == site.node_id
        if row.direction in (ACKNOWLEDGED, "push") and not known:
            reports[row.peer] = PeerReport(peer=row.peer, node_id=row.peer)
    for report in reports.values():
        peer = report.node_id
        if peer is None:
            continue
        acked = max(
            (cursors[(peer, d)].seq for d in (ACKNOWLEDGED, "push") if (peer, d) in cursors),
            default=0,
        )
        pending = await site.repl_backlog(acked, peer)
        report.backlog_ops, report.backlog_bytes = pending.ops, pending.bytes
        report.lag_s = lag_seconds(pending.oldest_hlc, now_ms)
        moved = [
            cursors[(peer, d)].updated_ms
            for d in ("pull", "push", ACKNOWLEDGED)
            if (peer, d) in cursors
        ]
        report.last_success_ms = max([*moved, report.last_success_ms or 0]) or None
        report.counters = counters.get(peer, PeerCounters())
        report.last_validate = validates.get(peer)
        report.bootstrap_progress = progress.get(peer)
    return list(reports.values())


@dataclass
class Probe:
    """A fresh look at one peer: is it reachable, its clock, what of its log we lack."""

    url: str
    node_id: str | None = None
    link_up: bool = False
    clock_offset_ms: int | None = None
    behind_ops: int | None = None
    behind_bytes: int | None = None
    behind_lag_s: float | None = None
    error: str | None = None


async def probe_peer(
    site: SyncSite, url: str, sign: Signer, verify: ssl.SSLContext | bool = True
) -> Probe:
    """Ask the peer its info and its backlog after our pull cursor; one attempt, short timeout."""
    probe = Probe(url=url)
    client = PeerClient(url, sign, PROBE_TIMEOUT_S, retry=PROBE_RETRY, verify=verify)
    async with client:
        probe.url = client.base_url
        state = PeerState(url=client.base_url)
        try:
            probe.node_id = await identify_peer(site, client, state)
            probe.link_up = True
            probe.clock_offset_ms = state.clock_offset_ms
            cursor = await site.get_cursor(probe.node_id, "pull")
            pending = await client.backlog(cursor, site.node_id)
        except (PeerUnavailable, ProtocolError) as exc:
            probe.link_up = not isinstance(exc, PeerUnavailable)
            probe.error = f"{type(exc).__name__}: {exc}"
            return probe
    probe.behind_ops, probe.behind_bytes = pending["ops"], pending["bytes"]
    probe.behind_lag_s = lag_seconds(pending["oldest_hlc"], wall_clock_ms())
    return probe


async def full_reports(
    site: SyncSite,
    states: Sequence[PeerState],
    sign: Signer,
    verify: ssl.SSLContext | bool = True,
) -> list[PeerReport]:
    """Reports from disk, with each configured peer probed live (concurrently)."""
    probes = await asyncio.gather(*(probe_peer(site, state.url, sign, verify) for state in states))
    # Copies of the pull tasks' states with what the probe saw (a peer its pull task has not
    # identified yet is reported under the node id the probe learnt).
    named = [
        PeerState(
            url=state.url,
            node_id=state.node_id or probe.node_id,
            clock_offset_ms=probe.clock_offset_ms
            if probe.clock_offset_ms is not None
            else state.clock_offset_ms,
            last_success_ms=state.last_success_ms,
            last_error=probe.error or state.last_error,
            link_up=probe.link_up,
        )
        for state, probe in zip(states, probes, strict=True)
    ]
    reports = await local_reports(site, named)
    by_url = {probe.url: probe for probe in probes}
    for report in reports:
        found = by_url.get(report.url or "")
        if found is not None:
            report.behind_ops = found.behind_ops
            report.behind_bytes = found.behind_bytes
            report.behind_lag_s = found.behind_lag_s
    return reports
