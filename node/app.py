"""Composition root: build the ASGI application for one node from its configuration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from api.access import BucketAccessCache
from api.access_log import AccessLogMiddleware
from api.app import ApiRuntime, S3Dispatcher
from api.internal_auth import replication_authorizer
from api.keyring import KeyRing
from api.settings import ApiSettings
from api.write_gate import WriteGate
from node.admin.maintenance import Maintenance
from node.admin.server import AdminBackend, AdminServer
from node.admin.status import collect_status
from node.config import SERVE_RECORD, ServeConfig
from node.console.node_facts import NodeSources, NodeView
from node.console.routes import build_console_router
from node.console.web import ConsoleContext
from node.internal import (
    ForwardToPrimary,
    InternalServer,
    forwarded_from_probes,
    internal_app,
    local_metrics_of,
)
from node.lifecycle_task import LifecycleSettings, lifecycle_forever
from node.metrics.registry import NodeMetrics
from node.metrics.replication import full_reports, local_reports
from node.metrics.storage import refresh_usage_forever
from node.metrics.workers import WorkersCollector
from node.peers import Pullers, peer_signer
from node.redact import public_config
from node.supervisor import PRIMARY
from node.tls import peer_verify
from node.tombstone_gc_task import GcSettings, purge_forever
from replication.routes import PREFIX as REPL_PREFIX
from replication.routes import (
    StoreUnavailable,
    WriteSlot,
    WritesPaused,
    build_router,
    error_response,
)
from storage.ops.operator_state import MaintenanceRecord
from storage.store import Store, StoreConfig
from storage.sync import peer_stats
from storage.sync.site import SyncSite
from storage.workers import SharedState

log = logging.getLogger("lakenode.node")

# How often the node looks for keys created, disabled or deleted by `lakenode keys`.
KEY_POLL_INTERVAL_S = 0.5
# How often a worker other than the primary reads the peers' node ids.
PEER_IDS_INTERVAL_S = 2.0


class NodeState:
    """What the running node holds; filled in by the lifespan.

    ``worker``: None for a node of one process; else this worker's index (node/supervisor.py),
    0 being the primary, which alone runs the background tasks and the admin channel."""

    def __init__(self, config: ServeConfig, worker: int | None = None) -> None:
        self.config = config
        self.worker = worker
        self.shared = SharedState(config.data_dir, worker) if worker is not None else None
        self.store: Store | None = None
        self.site: SyncSite | None = None  # the store's replication side
        self.runtime: ApiRuntime | None = None
        self.keyring = KeyRing(config.access_key, config.secret_key)
        self.pullers = Pullers()
        # Maintenance mode: the gate every write passes (S3 and replication), and its switch.
        self.write_gate = WriteGate(shared=self.shared)
        self.maintenance = Maintenance(self.write_gate, self.pullers)
        self.started_monotonic = time.monotonic()
        workers = WorkersCollector(config.workers, self.shared) if self.shared is not None else None
        self.metrics = NodeMetrics(config.data_dir, workers)
        # Peers' node ids as the other workers know them (the primary has its pullers').
        self.peer_ids: list[str | None] = []
        self.peer_verify = peer_verify(config.peer_ca)

    @property
    def primary(self) -> bool:
        return self.worker is None or self.worker == PRIMARY

    def replication_peers(self) -> list[str | None]:
        if self.primary:
            return [peer.node_id for peer in self.pullers.states]
        return self.peer_ids

    def require_store(self) -> Store:
        if self.store is None:
            raise StoreUnavailable("store is not open")
        return self.store

    def require_site(self) -> SyncSite:
        if self.site is None:
            raise StoreUnavailable("store is not open")
        return self.site

    def require_runtime(self) -> ApiRuntime:
        if self.runtime is None:
            raise RuntimeError("store is not open")
        return self.runtime

    async def status(self) -> dict[str, Any]:
        """The status document of the running node (admin channel, `lakenode status`)."""
        maintenance = self.maintenance
        return await collect_status(
            self.require_site(),
            uptime_s=time.monotonic() - self.started_monotonic,
            maintenance=MaintenanceRecord(maintenance.enabled, maintenance.changed_ms),
            peer_states=self.pullers.states,
            extra={
                "pid": os.getpid(),
                "maintenance_detail": maintenance.describe(),
                "config": public_config(self.config),
            },
        )


def repl_write_slot(gate: WriteGate) -> WriteSlot:
    """The replication endpoints that write hold a slot of the same gate as S3 mutations."""

    def refuse() -> Exception:
        return WritesPaused("the node is in maintenance mode: writes are paused")

    def slot() -> AbstractContextManager[None]:
        return gate.admitted(refuse)

    return slot


def api_settings(config: ServeConfig) -> ApiSettings:
    return ApiSettings(
        region=config.region,
        auth_enabled=config.auth,
        max_object_size=config.max_object_size,
        domain=config.domain,
        root_access_key=config.access_key,
        sigv2_enabled=config.sigv2,
        lifecycle_day_ms=config.lifecycle_day_ms,
    )


async def reload_keys(store: Store, keyring: KeyRing) -> bool:
    """Load the keys if their generation moved; True if it did. With several workers, tell
    the others (storage/workers.py): they load them before their next request."""
    generation = await store.keys_generation()
    if generation == keyring.generation:
        return False
    keyring.replace(await store.list_keys(), generation)
    shared = store.workers.shared
    if shared is not None:
        shared.note_keys_generation(generation)
    log.info("access keys loaded (generation %d)", generation)
    return True


async def _poll_keys(store: Store, keyring: KeyRing) -> None:
    while True:
        await asyncio.sleep(KEY_POLL_INTERVAL_S)
        try:
            await reload_keys(store, keyring)
        except Exception:
            log.exception("reloading access keys failed")


def _record_address(config: ServeConfig) -> Path:
    """Tell local tools (repl validate, status) where this node listens, while it runs; with
    TLS, also which certificate to pin (node/tls.py)."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    host = f"[{host}]" if ":" in host else host
    record = config.data_dir / SERVE_RECORD
    document: dict[str, str] = {"url": f"{config.scheme}://{host}:{config.port}"}
    if config.tls_cert is not None:
        document["cert"] = str(config.tls_cert.resolve())
    record.write_text(json.dumps(document))
    return record


def gc_settings(config: ServeConfig) -> GcSettings:
    return GcSettings(
        interval_ms=config.repl_gc_interval,
        window_ms=config.repl_tombstone_window,
        conflict_retention_ms=config.repl_conflict_retention,
    )


@dataclass
class _OncePerNode:
    """What the primary (or the only process) runs for the whole node, to stop at the end."""

    tasks: list[asyncio.Task[None]]
    admin: AdminServer
    record: Path
    pullers: Pullers

    async def stop(self) -> None:
        await self.admin.stop()
        for task in self.tasks:
            await _cancel(task)
        await self.pullers.stop()
        self.record.unlink(missing_ok=True)


async def _start_once_per_node(state: NodeState, store: Store, site: SyncSite) -> _OncePerNode:
    """Replication pulls and pushes, tombstone GC, lifecycle, usage metrics, the admin
    channel and the serve record: one instance per node."""
    config = state.config
    await site.record_configured_peers(config.peers)
    in_maintenance = await state.maintenance.restore(store)
    if not in_maintenance:
        state.write_gate.open()  # a primary that died while entering maintenance left it shut
    record = _record_address(config)
    tasks = [
        asyncio.create_task(refresh_usage_forever(state.metrics.storage), name="usage-metrics")
    ]
    state.pullers.start(
        site,
        config.peers,
        peer_signer(*config.peer_credentials, config.region),
        config.repl_max_clock_skew,
        state.peer_verify,
        paused=in_maintenance,
    )
    tasks.append(
        asyncio.create_task(
            purge_forever(site, gc_settings(config), lambda: state.maintenance.enabled),
            name="tombstone-gc",
        )
    )
    lifecycle = LifecycleSettings(config.lifecycle_interval, config.lifecycle_day_ms)
    tasks.append(
        asyncio.create_task(
            lifecycle_forever(store, lifecycle, lambda: state.maintenance.enabled),
            name="lifecycle",
        )
    )
    admin = AdminServer(
        config.data_dir, AdminBackend(state.require_store, state.maintenance, state.status)
    )
    await admin.start()
    return _OncePerNode(tasks, admin, record, state.pullers)


async def _start_internal(
    state: NodeState, main_app: Callable[[], ASGIApp]
) -> InternalServer | None:
    """A worker's internal socket (node/internal.py), opened last: the supervisor starts the
    other workers once the primary's is there."""
    if state.worker is None:
        return None
    fallback = main_app() if state.primary else None
    server = InternalServer(
        state.config.data_dir,
        state.worker,
        internal_app(state.metrics.local_exposition, fallback),
    )
    await server.start()
    return server


async def _follow_peer_ids(state: NodeState, site: SyncSite) -> None:
    """Outside the primary: the peers' node ids, for x-amz-replication-status."""
    while True:
        try:
            # url -> node id, as the primary's pulls recorded them
            known = await site.store.query(peer_stats.read_peer_urls)
            by_url = {url.rstrip("/"): node_id for url, node_id in known.items()}
            state.peer_ids = [by_url.get(url.rstrip("/")) for url in state.config.peers]
        except Exception:
            log.exception("reading the peers' node ids failed")
        await asyncio.sleep(PEER_IDS_INTERVAL_S)


@dataclass(frozen=True)
class NodeApps:
    main: ASGIApp  # S3 and every /_lakenode/ endpoint, on --listen
    probes: ASGIApp  # only metrics, health and ready, for --metrics-listen (no lifespan)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_app(config: ServeConfig, worker: int | None = None, recover: bool = False) -> NodeApps:
    """The node's applications; ``worker``: this process's index under a supervisor;
    ``recover``: that worker recovers the data dir first (the primary at the node's start)."""
    state = NodeState(config, worker)
    # The console's figures and charts: in the primary, which serves every console request.
    console_view = _console_view(state) if config.console and state.primary else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store = await Store.open(
            StoreConfig(
                data_dir=config.data_dir,
                node_id=config.node_id,
                segment_bytes_max=config.segment_size,
                worker=worker,
                worker_recovers=recover,
            )
        )
        site = await SyncSite.open(store)
        await reload_keys(store, state.keyring)
        state.keyring.refresh = lambda: reload_keys(store, state.keyring)
        shared = store.workers.shared
        if shared is not None:
            state.keyring.behind = lambda: shared.keys_generation() > state.keyring.generation
        state.store, state.site = store, site
        state.runtime = ApiRuntime(
            store,
            state.keyring,
            BucketAccessCache(store),
            lambda manifest: site.replication_status(manifest, state.replication_peers()),
            state.write_gate,
        )
        tasks = [asyncio.create_task(_poll_keys(store, state.keyring), name="key-poller")]
        if state.primary:
            once = await _start_once_per_node(state, store, site)
            if console_view is not None:
                sampler = console_view.sampler.run_forever()
                tasks.append(asyncio.create_task(sampler, name="console-sampler"))
        else:
            await state.maintenance.restore(store)
            tasks.append(asyncio.create_task(_follow_peer_ids(state, site), name="peer-ids"))
        store.observe_commits(state.metrics.commits)  # from here: the start's own commits aside
        internal = await _start_internal(state, lambda: main_app)
        try:
            yield
        finally:
            if internal is not None:
                await internal.stop()
            if state.primary:
                await once.stop()
            for task in tasks:
                await _cancel(task)
            state.runtime = None
            state.store, state.site = None, None
            await store.close()
            state.metrics.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    settings = api_settings(config)
    authorize = replication_authorizer(settings, state.keyring)
    app.include_router(
        build_router(
            state.require_site,
            authorize,
            max_skew_ms=config.repl_max_clock_skew,
            write_slot=repl_write_slot(state.write_gate),
        )
    )

    @app.get(f"{REPL_PREFIX}/status", include_in_schema=False)
    async def repl_status(request: Request) -> Response:
        # Like the replication routes: SigV4 by the root key or a replication key.
        try:
            await authorize(request)
        except HTTPException as exc:
            return error_response(exc.status_code, "AccessDenied", str(exc.detail))
        site = state.site
        if site is None:
            return error_response(503, "Unavailable", "the node's store is not open")
        await state.pullers.flush_counters(site)
        sign = state.pullers.sign
        reports = (
            await full_reports(site, state.pullers.states, sign, state.peer_verify)
            if sign is not None
            else await local_reports(site, [])
        )
        return JSONResponse(
            {"node_id": site.node_id, "peers": [report.to_json() for report in reports]}
        )

    add_probe_routes(app, state)
    if config.console:  # on the S3 address only: never on --metrics-listen
        context = _console_context(state, lambda: main_app, console_view)
        app.include_router(build_console_router(context))
    probes = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add_probe_routes(probes, state)
    dispatcher = S3Dispatcher(app, settings, state.require_runtime, state.metrics.requests)
    main_app: ASGIApp = AccessLogMiddleware(dispatcher)
    probes_app: ASGIApp = AccessLogMiddleware(probes)
    if not state.primary:  # what only the primary knows, it answers (node/internal.py)
        return NodeApps(
            main=ForwardToPrimary(main_app, config.data_dir),
            probes=ForwardToPrimary(probes_app, config.data_dir, forwarded_from_probes),
        )
    return NodeApps(main=main_app, probes=probes_app)


def _console_context(
    state: NodeState, s3_app: Callable[[], ASGIApp], view: NodeView | None = None
) -> ConsoleContext:
    config = state.config

    def node_id() -> str:
        return state.store.node_id if state.store is not None else ""

    return ConsoleContext(
        data_dir=config.data_dir,
        keyring=state.keyring,
        s3_app=s3_app,
        region=config.region,
        secure_cookies=config.scheme == "https",
        node_id=node_id,
        key_store=state.require_store,
        node=view,
    )


def _console_view(state: NodeState) -> NodeView:
    config = state.config
    return NodeView(
        NodeSources(
            data_dir=config.data_dir,
            address=f"{config.scheme}://{config.host}:{config.port}",
            site=lambda: state.site,
            pullers=state.pullers,
            peer_verify=state.peer_verify,
            maintenance=state.maintenance,
            metrics=state.metrics,
            started_monotonic=state.started_monotonic,
            other_workers=range(1, config.workers) if state.shared is not None else range(0),
        )
    )


def add_probe_routes(app: FastAPI, state: NodeState) -> None:
    """Metrics, health and readiness: on the S3 address and on --metrics-listen alike."""

    @app.get("/_lakenode/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # No authentication: metrics name peers and counts, nothing stored.
        site = state.site
        if site is None:
            return Response("store is not open\n", status_code=503, media_type="text/plain")
        await state.pullers.flush_counters(site)
        others = await local_metrics_of(state.config.data_dir, range(1, state.config.workers))
        body = await state.metrics.render(
            site, state.pullers.states, others if state.shared is not None else ()
        )
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/_lakenode/health", include_in_schema=False)
    async def health() -> Response:
        # Which worker answered: operators (and tests) can tell the processes apart.
        worker = {} if state.worker is None else {"x-lakenode-worker": str(state.worker)}
        return JSONResponse({"status": "ok"}, headers=worker)

    @app.get("/_lakenode/ready", include_in_schema=False)
    async def ready(_request: Request) -> Response:
        if state.store is None:
            return JSONResponse({"ready": False}, status_code=503)
        if state.write_gate.closed:  # maintenance (or entering it): take us out of rotation
            return JSONResponse({"ready": False, "reason": "maintenance"}, status_code=503)
        if state.shared is not None and not state.shared.node_started():
            # Not before every worker serves: clients that connect at once would all land
            # on the first worker and stay there (keep-alive).
            return JSONResponse({"ready": False, "reason": "starting"}, status_code=503)
        return JSONResponse({"ready": True, "node_id": state.store.node_id})
