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
from collections.abc import Mapping

from api.sigv4 import sign_headers
from replication.client import PeerClient, Signer
from replication.ports import ReplicaStore
from replication.puller import PeerState, pull_forever

log = logging.getLogger("lakenode.node")

PEER_TIMEOUT_S = 30.0


def peer_signer(access_key: str, secret_key: str, region: str) -> Signer:
    def sign(
        method: str, url: str, headers: Mapping[str, str], payload_hash: str
    ) -> dict[str, str]:
        return sign_headers(method, url, headers, access_key, secret_key, region, payload_hash)

    return sign


class Pullers:
    """The node's pull tasks, one per configured peer, and what they know of their peers."""

    def __init__(self) -> None:
        self.states: list[PeerState] = []
        self._clients: list[PeerClient] = []
        self._tasks: list[asyncio.Task[None]] = []

    def start(
        self, store: ReplicaStore, peers: tuple[str, ...], sign: Signer, max_skew_ms: int
    ) -> None:
        for url in peers:
            client = PeerClient(url, sign, PEER_TIMEOUT_S)
            state = PeerState(url=client.base_url)
            task = asyncio.create_task(
                pull_forever(store, client, state, max_skew_ms), name=f"pull:{client.base_url}"
            )
            self._clients.append(client)
            self.states.append(state)
            self._tasks.append(task)
            log.info("replicating from peer %s", client.base_url)

    async def stop(self) -> None:
        """Cancel every pull (a round in flight is not applied or is applied whole)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in self._clients:
            await client.close()
        self._tasks.clear()
        self._clients.clear()
