"""The Replication page's "Validate now": `lakenode repl validate` run from inside the node.

The node's primary worker holds the store, so the local side of the comparison is the node's
own SyncSite; the peer is asked for its digests as the CLI asks it. The comparison and the
record are node/replication_validate.py's, the CLI's own: `repl status`, the metrics and the
overview read the outcome back. One run at a time; every peer is compared concurrently and
each comparison is bounded by a timeout, so the console's request ends.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Final

from node.peers import PEER_TIMEOUT_S
from node.replication_validate import (
    DifferenceLine,
    RecordValidate,
    difference_line,
    validate_with,
)
from replication.client import PeerClient, PeerUnavailable, Signer
from replication.protocol import ProtocolError
from storage.errors import StorageError
from storage.sync.site import SyncSite

VALIDATE_TIMEOUT_S: Final = 120.0  # per peer; a bigger store: `lakenode repl validate`
LINES_SHOWN_MAX: Final = 200  # differences listed per peer (all are counted and recorded)


@dataclass
class PeerOutcome:
    url: str
    peer_id: str | None = None
    differences: int | None = None  # None: the comparison failed (see error)
    lines: list[DifferenceLine] = field(default_factory=list)  # the first LINES_SHOWN_MAX
    error: str | None = None

    @property
    def agree(self) -> bool:
        return self.differences == 0


@dataclass
class ValidationRun:
    """One "Validate now": who asked, when, and each peer's outcome."""

    access_key: str
    started_ms: int
    finished_ms: int | None = None
    outcomes: list[PeerOutcome] = field(default_factory=list)


class Validator:
    """Runs validate against every configured peer, one run at a time; keeps the last run
    (in memory: the page shows its differences; the counts are recorded on disk)."""

    def __init__(self) -> None:
        self.last: ValidationRun | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(
        self,
        site: SyncSite,
        urls: list[str],
        sign: Signer,
        verify: ssl.SSLContext | bool,
        access_key: str,
    ) -> ValidationRun | None:
        """The run, or None if one is running already."""
        if self._lock.locked():
            return None
        async with self._lock:
            run = ValidationRun(access_key, int(time.time() * 1000))
            run.outcomes = list(
                await asyncio.gather(*(_validate_peer(site, url, sign, verify) for url in urls))
            )
            run.finished_ms = int(time.time() * 1000)
            self.last = run
            return run


async def _validate_peer(
    site: SyncSite, url: str, sign: Signer, verify: ssl.SSLContext | bool
) -> PeerOutcome:
    outcome = PeerOutcome(url)
    try:
        async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as peer:
            found = await asyncio.wait_for(validate_with(site, peer), VALIDATE_TIMEOUT_S)
        # The same record as the CLI's: `repl status`, the metrics and the overview read it.
        await site.store.commit(RecordValidate(found.peer_id, found.record()))
    except TimeoutError:
        outcome.error = f"no answer within {VALIDATE_TIMEOUT_S:.0f} s"
        return outcome
    except (PeerUnavailable, ProtocolError, StorageError, OSError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.peer_id = found.peer_id
    outcome.differences = len(found.differences)
    outcome.lines = [difference_line(d) for d in found.differences[:LINES_SHOWN_MAX]]
    return outcome
