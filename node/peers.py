"""Wiring replication to peers: signed clients and one pull task per peer.

The signer wraps api's SigV4 client-side signing with the peer credentials, so replication
(which must not import api) only ever sees a ``sign(method, url, headers, payload_hash)``.
Peers verify with their own region setting; we sign for ours, so nodes that replicate with
each other must share a region (the default, us-east-1, for all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping

from api.sigv4_signing import sign_headers
from replication.client import PeerClient, Signer
from replication.puller import PeerState, pull_forever
from storage.sync.peer_stats import PeerCounters
from storage.sync.site import SyncSite

log = logging.getLogger("lakenode.node")

PEER_TIMEOUT_S = 30.0
# Bytes and failed rounds reach the counters on disk this often (conflicts and clock-skew
# rejections are counted in the transaction that applies them).
COUNTER_FLUSH_INTERVAL_S = 2.0


def peer_signer(access_key: str, secret_key: str, region: str) -> Signer:
    def sign(
        method: str, url: str, headers: Mapping[str, str], payload_hash: str
    ) -> dict[str, str]:
        return sign_headers(method, url, headers, access_key, secret_key, region, payload_hash)

    return sign


class Pullers:
    """The node's pull tasks, one per configured peer, and what they know of their peers.

    Maintenance mode pauses them (:meth:`pause`, :meth:`resume`): nothing may write then.
    """

    def __init__(self) -> None:
        self.states: list[PeerState] = []
        self.sign: Signer | None = None
        self._clients: list[PeerClient] = []
        self._pulls: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        # What of each state's totals is already added to the counters on disk.
        self._flushed: list[PeerCounters] = []
        self._flush_lock = asyncio.Lock()
        self._site: SyncSite | None = None
        self._max_skew_ms = 0
        self._named: dict[int, str] = {}  # state index -> node id remembered on disk

    def start(
        self,
        site: SyncSite,
        peers: tuple[str, ...],
        sign: Signer,
        max_skew_ms: int,
        verify: ssl.SSLContext | bool = True,
        *,
        paused: bool = False,
    ) -> None:
        """``verify``: how https peers' certificates are checked (node/tls.py peer_verify)."""
        self.sign = sign
        self._site = site
        self._max_skew_ms = max_skew_ms
        for url in peers:
            client = PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify)
            self._clients.append(client)
            self.states.append(PeerState(url=client.base_url))
            self._flushed.append(PeerCounters())
            log.info("replicating from peer %s", client.base_url)
        if peers:
            self._flusher = asyncio.create_task(self._flush_forever(site), name="repl-counters")
        if not paused:
            self.resume()

    @property
    def paused(self) -> bool:
        return bool(self._clients) and not self._pulls

    def resume(self) -> None:
        """(Re)start one pull task per peer, with the peers' states as they were."""
        if self._pulls or self._site is None:
            return
        site = self._site
        self._pulls = [
            asyncio.create_task(
                pull_forever(site, client, state, self._max_skew_ms),
                name=f"pull:{client.base_url}",
            )
            for client, state in zip(self._clients, self.states, strict=True)
        ]

    async def pause(self) -> None:
        """Stop pulling: cancel every pull (a round in flight is not applied or is applied
        whole; what the committer already holds still commits), then flush the counters."""
        pulls, self._pulls = self._pulls, []
        await _cancel(pulls)
        if self._site is not None:
            await self.flush_counters(self._site)

    async def stop(self) -> None:
        """Cancel every pull and the counter flusher; save the counters; close the clients."""
        await _cancel([*self._pulls, *([self._flusher] if self._flusher else [])])
        self._pulls, self._flusher = [], None
        if self._site is not None:
            try:
                await self.flush_counters(self._site)
            except Exception:
                log.exception("saving replication counters failed")
        for client in self._clients:
            await client.close()
        self._clients.clear()

    async def flush_counters(self, site: SyncSite) -> None:
        """Add what the pull tasks counted since the last flush to the counters on disk.

        Bytes received and failed rounds (not unavailability: that is ``link_up``) per peer
        node id; a peer not identified yet keeps its counts until it is.
        """
        async with self._flush_lock:
            for index, (state, flushed) in enumerate(zip(self.states, self._flushed, strict=True)):
                if state.node_id is None:
                    continue
                if self._named.get(index) != state.node_id:
                    await site.remember_peer_url(state.url, state.node_id)
                    self._named[index] = state.node_id
                delta = PeerCounters(
                    bytes_received=state.totals.bytes_received - flushed.bytes_received,
                    apply_errors={
                        reason: count - flushed.apply_errors.get(reason, 0)
                        for reason, count in state.errors.items()
                        if reason != "unavailable" and count > flushed.apply_errors.get(reason, 0)
                    },
                )
                if delta.is_zero():
                    continue
                await site.add_repl_counters(state.node_id, delta)
                flushed.add(delta)

    async def _flush_forever(self, site: SyncSite) -> None:
        while True:
            await asyncio.sleep(COUNTER_FLUSH_INTERVAL_S)
            try:
                await self.flush_counters(site)
            except Exception:
                log.exception("saving replication counters failed")


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
