"""The storage maintenance jobs (node/admin/jobs.py contract): fsck, scrub, gc, mpu-gc.

Read-only jobs (``fsck``, ``scrub``, ``gc-plan``, ``mpu-gc-plan``) may run beside a live
node. Jobs that move data or delete (``scrub-repair``, ``gc-run``, ``gc-rewrite``,
``mpu-gc-run``) are quiet: a running node runs them only in maintenance mode.

Params are JSON values; every report carries ``exit_code``: 0 when clean or done, 1 when
fsck found something or scrub left corruption unrepaired.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node.admin.jobs import Job, JobReport, register
from node.peers import PEER_TIMEOUT_S, peer_signer
from node.tls import TlsFileError, peer_verify
from replication.client import ChunkNotFound, PeerClient, PeerUnavailable, Signer
from replication.protocol import ProtocolError
from storage.ops import fsck, gc, mpu_gc, scrub
from storage.ops.jobstate import Progress
from storage.store import Store
from storage.sync.site import SyncSite

log = logging.getLogger("lakenode.ops")


async def run_fsck(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    progress.note("checking catalog, manifests and segments")
    report = await store.inspect(fsck.check, store.segment_dir)
    return {"exit_code": 0 if report.clean else 1, **report.to_json()}


async def run_scrub(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    result = await scrub.scrub(store, params.get("mb_per_s"), progress)
    return _scrub_report(result)


async def run_scrub_repair(
    store: Store, params: Mapping[str, Any], progress: Progress
) -> JobReport:
    """Scrub, then fetch every corrupt chunk again from ``params["peers"]`` (else the peers
    this data dir has replicated with), signing with the credentials in ``params`` and
    verifying https peers against ``params["peer_ca"]`` (a PEM file) if given."""
    urls = list(params.get("peers") or [])
    if not urls:
        site = await SyncSite.open(store)  # the peers this data dir replicated with
        urls = sorted(await site.peer_urls())
    if not urls:
        return {"exit_code": 2, "error": "no peer to repair from: name one with --peer"}
    credentials = [str(params.get(name) or "") for name in ("access_key", "secret_key", "region")]
    if not all(credentials):
        return {"exit_code": 2, "error": "repair needs access_key, secret_key and region"}
    sign = peer_signer(*credentials)
    try:
        verify = peer_verify(Path(params["peer_ca"]) if params.get("peer_ca") else None)
    except TlsFileError as exc:
        return {"exit_code": 2, "error": str(exc)}
    async with PeerChunks(urls, sign, verify) as peers:
        result = await scrub.scrub(store, params.get("mb_per_s"), progress, peers.fetch)
    return _scrub_report(result)


def _scrub_report(result: scrub.ScrubResult) -> JobReport:
    return {"exit_code": 1 if result.unrepaired else 0, **result.to_json()}


class PeerChunks:
    """Fetch chunks by hash from the first peer that has them."""

    def __init__(self, urls: list[str], sign: Signer, verify: ssl.SSLContext | bool) -> None:
        self._clients = [PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) for url in urls]

    async def __aenter__(self) -> PeerChunks:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for client in self._clients:
            await client.close()

    async def fetch(self, digest: bytes) -> bytes | None:
        for client in self._clients:
            try:
                return await client.chunk(digest)
            except ChunkNotFound:
                continue
            except (PeerUnavailable, ProtocolError) as exc:
                log.warning("chunk %s from %s: %s", digest.hex(), client.base_url, exc)
        return None


async def run_gc_plan(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    plan, _live = await gc.make_plan(store, _threshold(params))
    return {"exit_code": 0, **plan.to_json()}


async def run_gc(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    outcome = await gc.run(store, _threshold(params), progress, batch_bytes=_batch(params))
    return {"exit_code": 0, **outcome.to_json()}


async def run_gc_rewrite(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    segments = {int(s) for s in params["segments"]}
    outcome = await gc.run(
        store, _threshold(params), progress, only=segments, batch_bytes=_batch(params)
    )
    return {"exit_code": 0, **outcome.to_json()}


def _threshold(params: Mapping[str, Any]) -> float:
    return float(params.get("threshold", gc.DEFAULT_THRESHOLD))


def _batch(params: Mapping[str, Any]) -> int:
    return int(params.get("batch_bytes", gc.BATCH_LIVE_BYTES))


async def run_mpu_plan(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    stale = await mpu_gc.stale_uploads(store, int(params["older_than_ms"]))
    return {"exit_code": 0, "uploads": [s.to_json() for s in stale], "aborted": []}


async def run_mpu_gc(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    stale = await mpu_gc.stale_uploads(store, int(params["older_than_ms"]))
    aborted = await mpu_gc.abort_stale(store, stale, progress)
    return {
        "exit_code": 0,
        "uploads": [s.to_json() for s in stale],
        "aborted": [s.upload.upload_id for s in aborted],
    }


FSCK = Job("fsck", quiet=False, run=run_fsck)
SCRUB = Job("scrub", quiet=False, run=run_scrub)
SCRUB_REPAIR = Job("scrub-repair", quiet=True, run=run_scrub_repair)
GC_PLAN = Job("gc-plan", quiet=False, run=run_gc_plan)
GC_RUN = Job("gc-run", quiet=True, run=run_gc)
GC_REWRITE = Job("gc-rewrite", quiet=True, run=run_gc_rewrite)
MPU_GC_PLAN = Job("mpu-gc-plan", quiet=False, run=run_mpu_plan)
MPU_GC_RUN = Job("mpu-gc-run", quiet=True, run=run_mpu_gc)

register(FSCK, SCRUB, SCRUB_REPAIR, GC_PLAN, GC_RUN, GC_REWRITE, MPU_GC_PLAN, MPU_GC_RUN)
