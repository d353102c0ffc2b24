"""The admin channel of a running node: a Unix socket in the data dir, for local tools.

``lakenode serve`` runs a second, small HTTP server in its own event loop on
``DATA/admin.sock`` (mode 0600, replaced at start if a dead node left one, removed at
shutdown). Every request must carry ``Authorization: Bearer <token>``, the token being 32
random bytes (hex) the node writes at each start to ``DATA/admin.token``, created 0600 under a
temporary name and renamed, so it is never readable by others, not even for an instant.
Wrong or missing token: 401. Routes, all JSON:

* ``GET /admin/status``: the status document (node/admin/status.py), with uptime and the node's
  configuration (secrets replaced by "REDACTED").
* ``GET /admin/maintenance``; ``POST /admin/maintenance`` ``{"enabled": bool,
  "timeout_s": float}``: enabling answers once no write is in flight any more (node/
  maintenance.py), or 503 after the timeout; disabling is 409 while a quiet job runs.
* ``POST /admin/jobs/{name}`` with the job's params as a JSON object: runs the job
  registered in node/admin/jobs.py on the node's store and streams NDJSON lines
  ``{"progress": {"done", "total", "unit"}}`` and ``{"note": "..."}``, then
  ``{"report": {...}}`` or ``{"error": "..."}``. Unknown job: 404; a quiet job while
  maintenance is off: 409. If the client goes away, the job is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

# Every job of this build, registered by importing it: whoever runs jobs knows them all.
from node.admin import ops_jobs, snapshot_job  # noqa: F401
from node.admin.client import socket_path, token_path
from node.admin.jobs import Job, JobReport, registered
from node.admin.maintenance import (
    DEFAULT_DRAIN_TIMEOUT_S,
    Maintenance,
    MaintenanceError,
    quiet_refusal,
)
from node.unix_server import UnixServer
from storage.store import Store

log = logging.getLogger("lakenode.admin")

SHUTDOWN_GRACE_S: Final = 5
# Progress lines are coalesced to at most one per this interval (notes are all kept, up to
# MAX_PENDING_NOTES between two lines; beyond that they are counted, not kept).
PROGRESS_INTERVAL_S: Final = 0.2
MAX_PENDING_NOTES: Final = 10_000
TOKEN_FILE_HINT: Final = "DATA/admin.token"


@dataclass(frozen=True)
class AdminBackend:
    """What the admin routes need from the node (built by node/app.py)."""

    store: Callable[[], Store]
    maintenance: Maintenance
    status: Callable[[], Awaitable[dict[str, Any]]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ---- the application ----------------------------------------------------------------------


def build_admin_app(backend: AdminBackend, token: str) -> ASGIApp:
    async def status(_request: Request) -> Response:
        return JSONResponse(await backend.status())

    async def get_maintenance(_request: Request) -> Response:
        return JSONResponse(backend.maintenance.describe())

    async def post_maintenance(request: Request) -> Response:
        body = await _json_body(request)
        enabled = body.get("enabled")
        timeout_s = body.get("timeout_s", DEFAULT_DRAIN_TIMEOUT_S)
        if not isinstance(enabled, bool) or not isinstance(timeout_s, int | float):
            return error(400, 'expected {"enabled": true|false, "timeout_s": seconds}')
        try:
            if enabled:
                await backend.maintenance.enable(backend.store(), float(timeout_s))
            else:
                await backend.maintenance.disable(backend.store())
        except MaintenanceError as exc:
            return error(503 if enabled else 409, str(exc))
        return JSONResponse(backend.maintenance.describe())

    async def run_job(request: Request) -> Response:
        name = request.path_params["name"]
        job = registered().get(name)
        if job is None:
            return error(404, f"no job named {name!r} on this node")
        params = await _json_body(request)
        if job.quiet:
            try:
                backend.maintenance.check_quiet(name)
            except MaintenanceError as exc:
                return error(409, str(exc))
        lines = _job_lines(job, backend.store(), params, backend.maintenance)
        return StreamingResponse(lines, media_type="application/x-ndjson")

    app = Starlette(
        routes=[
            Route("/admin/status", status, methods=["GET"]),
            Route("/admin/maintenance", get_maintenance, methods=["GET"]),
            Route("/admin/maintenance", post_maintenance, methods=["POST"]),
            Route("/admin/jobs/{name}", run_job, methods=["POST"]),
        ]
    )
    return TokenGuard(_BadBody(app), token)


class TokenGuard:
    """Every request needs the bearer token (compared in constant time), else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._expected):
                response = error(401, f"missing or wrong admin token (see {TOKEN_FILE_HINT})")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BadBody(Exception):
    pass


class _BadBody:
    """A malformed request body is a 400 with a JSON error, wherever it is noticed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except BadBody as exc:
            await error(400, str(exc))(scope, receive, send)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise BadBody(f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadBody("the body must be a JSON object")
    return document


# ---- jobs -----------------------------------------------------------------------------------


class StreamProgress:
    """A job's progress, collected for the NDJSON stream (jobs may report from threads)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._latest: dict[str, Any] | None = None
        self._notes: deque[str] = deque()
        self._dropped = 0
        self.changed = asyncio.Event()

    def advance(self, done: int, total: int | None, unit: str) -> None:
        self._latest = {"done": done, "total": total, "unit": unit}
        self._signal()

    def note(self, message: str) -> None:
        if len(self._notes) < MAX_PENDING_NOTES:
            self._notes.append(message)
        else:
            self._dropped += 1
        self._signal()

    def _signal(self) -> None:
        if threading.get_ident() == self._loop_thread:
            self.changed.set()
        else:
            self._loop.call_soon_threadsafe(self.changed.set)

    def take(self) -> list[dict[str, Any]]:
        """The lines pending since the last call, notes first, then the latest figures."""
        self.changed.clear()
        lines: list[dict[str, Any]] = []
        while self._notes:
            lines.append({"note": self._notes.popleft()})
        if self._dropped:
            lines.append({"note": f"({self._dropped} more note(s) not shown)"})
            self._dropped = 0
        if self._latest is not None:
            lines.append({"progress": self._latest})
            self._latest = None
        return lines


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=str).encode() + b"\n"


async def _job_lines(
    job: Job, store: Store, params: dict[str, Any], maintenance: Maintenance
) -> AsyncIterator[bytes]:
    """Run the job; yield its progress as it goes and its report (or error) at the end."""
    if job.quiet and not maintenance.enabled:  # disabled since the request was checked
        yield _line({"error": quiet_refusal(job.name)})
        return
    # A quiet job holds maintenance on until it ends (no await between check and hold).
    with maintenance.quiet_job(job.name) if job.quiet else contextlib.nullcontext():
        progress = StreamProgress()

        async def run() -> JobReport:
            return await job.run(store, params, progress)

        task = asyncio.create_task(run(), name=f"job:{job.name}")
        try:
            while not task.done():
                changed = asyncio.create_task(progress.changed.wait())
                await asyncio.wait({task, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                for line in progress.take():
                    yield _line(line)
                if not task.done():
                    await asyncio.sleep(PROGRESS_INTERVAL_S)
            for line in progress.take():
                yield _line(line)
            yield _line(_outcome(job, task))
        finally:
            if not task.done():  # the client went away: stop the job
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _outcome(job: Job, task: asyncio.Task[JobReport]) -> dict[str, Any]:
    exc = task.exception()
    if exc is not None:
        log.error("job %s failed: %s", job.name, exc, exc_info=exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"report": task.result()}


# ---- the server ---------------------------------------------------------------------------


def write_token(path: Path) -> str:
    """A new token in ``path``, mode 0600 from its creation (temporary name, then rename)."""
    token = secrets.token_hex(32)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return token


class AdminServer:
    """Starts and stops the admin channel of one node."""

    def __init__(self, data_dir: Path, backend: AdminBackend) -> None:
        self.data_dir = data_dir
        self.backend = backend
        self._server: UnixServer | None = None

    async def start(self) -> None:
        """Serve on DATA/admin.sock. A failure is logged and leaves S3 serving without it."""
        try:
            token = write_token(token_path(self.data_dir))
            server = UnixServer(
                socket_path(self.data_dir),
                build_admin_app(self.backend, token),
                "admin",
                SHUTDOWN_GRACE_S,
            )
            await server.start()
        except OSError as exc:
            log.error("admin channel disabled: cannot listen on %s: %s", self.data_dir, exc)
            token_path(self.data_dir).unlink(missing_ok=True)
            return
        self._server = server
        log.info("admin channel on %s", socket_path(self.data_dir))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        socket_path(self.data_dir).unlink(missing_ok=True)
        token_path(self.data_dir).unlink(missing_ok=True)
