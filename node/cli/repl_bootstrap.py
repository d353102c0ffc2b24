"""``lakenode repl bootstrap --from URL``: fill a new (stopped, empty) site from a peer.

The data dir is created if needed. Progress is one line per page (pages, objects, bytes,
rates), or a bar with rate and ETA (node/admin/progress.py) when stdout is a terminal. Run again
after a crash or an interruption and it resumes after the last page applied; run again after
it finished and it only catches up with the peer's log. Exit status 0 when the copy and the
catch-up pull succeeded, 1 otherwise.
"""

from __future__ import annotations

import sqlite3
import ssl
import sys
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console

from node.admin.progress import RichProgress
from node.peers import PEER_TIMEOUT_S
from replication.bootstrap import BootstrapProgress, bootstrap
from replication.client import PeerClient, PeerUnavailable, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState, identify_peer
from storage.data_dir_lock import DataDirLocked
from storage.errors import StorageError
from storage.store import Store, StoreConfig
from storage.sync.bootstrap_state import BootstrapRecord, read_bootstrap
from storage.sync.site import SyncSite

MiB = 1 << 20


class ProgressPrinter:
    """Prints a bootstrap's progress: a line per page, or bars with rate and ETA on a TTY."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._bars = RichProgress("bootstrap", Console(file=out)) if out.isatty() else None

    def __call__(self, state: BootstrapProgress, client: PeerClient) -> None:
        received = client.bytes_received - state.bytes_start
        if self._bars is not None:
            self._bars.advance(state.objects_done, state.objects_total, "objects")
            return
        elapsed = max(time.monotonic() - state.started, 1e-6)
        figures = (
            f"{state.objects_done}/{state.objects_total} objects, "
            f"{received / MiB:.1f} MiB, {state.objects_done / elapsed:.0f} objects/s, "
            f"{received / MiB / elapsed:.1f} MiB/s"
        )
        self._out.write(
            f"bootstrap {state.peer}: page {state.pages_total}, {figures} ({state.ratio:.0%})\n"
        )
        self._out.flush()

    def finish(self) -> None:
        if self._bars is not None:
            self._bars.close()


async def bootstrap_site(
    data_dir: Path,
    url: str,
    sign: Signer,
    skew_ms: int,
    node_id: str | None,
    page_size: int,
    verify: ssl.SSLContext | bool = True,
) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = await Store.open(StoreConfig(data_dir, node_id=node_id))
    except DataDirLocked as exc:
        _fail(f"{exc}: stop that node first (bootstrap fills a stopped, empty site)")
        return 1
    except (StorageError, ValueError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return 1
    printer = ProgressPrinter(sys.stdout)
    try:
        site = await SyncSite.open(store)
        async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as client:
            try:
                peer_id = await identify_peer(site, client, PeerState(url=client.base_url))
                state = await bootstrap(site, client, peer_id, skew_ms, printer, page_size)
            except (PeerUnavailable, ProtocolError, StorageError) as exc:
                printer.finish()
                _fail(f"{client.base_url}: {type(exc).__name__}: {exc}")
                return 1
        printer.finish()
        print(_summary(state, client.base_url, store.node_id))
        return 0
    finally:
        await store.close()


def _summary(state: BootstrapProgress, url: str, node_id: str) -> str:
    elapsed = time.monotonic() - state.started
    if state.pages == 0 and not state.resumed:
        head = f"already bootstrapped from {url} (node {state.peer}) into {node_id}"
    else:
        resumed = " (resumed)" if state.resumed else ""
        head = (
            f"bootstrapped {node_id} from {url} (node {state.peer}){resumed}: "
            f"{state.pages} page(s), {state.objects_done} objects, {state.changes} change(s), "
            f"{state.applied} applied, {state.duplicates} duplicate, "
            f"{state.pull.chunks_fetched} chunk(s) in {elapsed:.1f} s; snapshot seq "
            f"{state.snapshot_seq}"
        )
    return f"{head}; caught up: {state.catch_up.summary()}"


def unfinished_bootstrap(data_dir: Path) -> BootstrapRecord | None:
    """The bootstrap record of a data dir whose bootstrap has not finished, if any.

    Read-only: called before a node starts, to refuse serving a half-copied site (readers
    would see part of the state, and its pullers would start from seq 0 of every peer)."""
    path = data_dir / "meta.db"
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return read_bootstrap(conn)
    except sqlite3.OperationalError:  # a catalog from before the meta table: no bootstrap
        return None
    finally:
        conn.close()


def _fail(message: str) -> None:
    sys.stderr.write(f"lakenode repl bootstrap: {message}\n")
