"""Composition root: build the ASGI application for one node from its configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from api.access_log import AccessLogMiddleware
from api.app import S3Dispatcher
from api.settings import ApiSettings
from node.config import ServeConfig
from storage.store import Store, StoreConfig


class NodeState:
    """What the running node holds; filled in by the lifespan."""

    def __init__(self) -> None:
        self.store: Store | None = None

    def require_store(self) -> Store:
        if self.store is None:
            raise RuntimeError("store is not open")
        return self.store


def api_settings(config: ServeConfig) -> ApiSettings:
    return ApiSettings(
        region=config.region,
        auth_enabled=config.auth,
        credentials={config.access_key: config.secret_key},
        max_object_size=config.max_object_size,
        domain=config.domain,
        root_access_key=config.access_key,
    )


def build_app(config: ServeConfig) -> ASGIApp:
    state = NodeState()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.store = await Store.open(
            StoreConfig(
                data_dir=config.data_dir,
                node_id=config.node_id,
                segment_bytes_max=config.segment_size,
            )
        )
        try:
            yield
        finally:
            await state.store.close()
            state.store = None

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/_lakenode/health", include_in_schema=False)
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/_lakenode/ready", include_in_schema=False)
    async def ready(_request: Request) -> Response:
        if state.store is None:
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True, "node_id": state.store.node_id})

    return AccessLogMiddleware(S3Dispatcher(app, api_settings(config), state.require_store))
