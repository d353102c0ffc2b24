"""``lakenode repl pull|push``: catch a stopped data dir up with its peers, or them up with it.

``pull`` brings a stopped node's data dir up to date with peers, once: for catching a node up
before starting it, with the same code as a running node's pull tasks. A running node holds
its data dir's lock, so ``pull`` refuses a data dir in use instead of opening the store twice.
``push`` sends a stopped node's changes to peers until they hold them all (the mirror of
``pull``). Both add what they moved to the peer's counters on disk (metrics, ``repl status``).
"""

from __future__ import annotations

from pathlib import Path

from node.cli.repl_common import Verify, fail
from node.peers import PEER_TIMEOUT_S
from replication.client import PeerClient, PeerUnavailable, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState, PullStats, identify_peer, pull_once
from replication.pusher import PushFailed, push_once
from storage.data_dir_lock import DataDirLocked
from storage.errors import StorageError
from storage.store import Store, StoreConfig
from storage.sync.peer_stats import PeerCounters
from storage.sync.site import SyncSite


async def pull_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, skew_ms: int, verify: Verify = True
) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked as exc:
        fail(f"{exc}: stop that node first (a running node pulls from its --peer itself)")
        return 1
    try:
        site = await SyncSite.open(store)
        for url in peers:
            if not await pull_peer(site, url, sign, skew_ms, verify):
                return 1
        return 0
    finally:
        await store.close()


async def pull_peer(
    site: SyncSite, url: str, sign: Signer, skew_ms: int, verify: Verify = True
) -> bool:
    """Pull one peer until caught up; print one line saying what happened."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as client:
        state = PeerState(url=client.base_url)
        try:
            name = await identify_peer(site, client, state)
            stats = await pull_once(site, client, name, skew_ms, state=state)
        except (PeerUnavailable, ProtocolError, StorageError) as exc:
            fail(f"{client.base_url}: {type(exc).__name__}: {exc}")
            return False
        finally:
            await _add_counters(site, state, client)
    print(f"pulled {client.base_url} (node {name}) into {site.node_id}: {_summary(stats)}")
    return True


def _summary(stats: PullStats) -> str:
    return f"caught up; {stats.summary()}"


async def _add_counters(site: SyncSite, state: PeerState, client: PeerClient) -> None:
    """What a one-shot job moved, into the peer's counters on disk (metrics, status)."""
    if state.node_id is not None:
        delta = PeerCounters(bytes_sent=client.bytes_sent, bytes_received=client.bytes_received)
        await site.add_repl_counters(state.node_id, delta)


async def push_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, verify: Verify = True
) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked as exc:
        fail(f"{exc}: stop that node first (push runs on a stopped data dir)", "push")
        return 1
    try:
        site = await SyncSite.open(store)
        for url in peers:
            if not await push_peer(site, url, sign, verify):
                return 1
        return 0
    finally:
        await store.close()


async def push_peer(site: SyncSite, url: str, sign: Signer, verify: Verify = True) -> bool:
    """Push to one peer until it holds our log; print one line saying what happened."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as client:
        state = PeerState(url=client.base_url)
        try:
            name = await identify_peer(site, client, state)
            stats = await push_once(site, client, name)
        except (PeerUnavailable, ProtocolError, StorageError, PushFailed) as exc:
            fail(f"{client.base_url}: {type(exc).__name__}: {exc}", "push")
            return False
        finally:
            await _add_counters(site, state, client)
    print(f"pushed {site.node_id} to {client.base_url} (node {name}): caught up; {stats.summary()}")
    return True
