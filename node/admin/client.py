"""The command-line side of the admin channel: run a job, read status, switch maintenance.

Every tool works the same way on a data dir: if no node holds it (``Store.open`` succeeds),
the tool opens the store and does the work in process; if a running node holds it
(:class:`~storage.data_dir_lock.DataDirLocked`), the tool asks that node over its admin channel, a
Unix socket in the data dir (``DATA/admin.sock``) guarded by a bearer token the node writes at
each start (``DATA/admin.token``, mode 0600: only the node's user can read it). See
node/admin/server.py for the server side.

A job's progress arrives as NDJSON lines (``{"progress": {...}}``, ``{"note": "..."}``) and
ends with ``{"report": {...}}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

# Every job of this build, registered by importing it: whoever runs jobs knows them all.
from node.admin import ops_jobs, snapshot_job  # noqa: F401
from node.admin.jobs import JobReport, lookup, registered
from node.unix_server import unix_address
from storage.data_dir_lock import DataDirLocked
from storage.ops.jobstate import Progress
from storage.store import Store, StoreConfig

T = TypeVar("T")

SOCKET_NAME: Final = "admin.sock"
TOKEN_NAME: Final = "admin.token"
CONNECT_TIMEOUT_S: Final = 5.0
ANSWER_TIMEOUT_S: Final = 60.0
# Added to a maintenance drain timeout: the node answers after the drain plus a commit.
ANSWER_MARGIN_S: Final = 30.0


class AdminError(Exception):
    """The tool cannot do what was asked; the message is one line for the operator."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_NAME


def not_answering(data_dir: Path, why: str) -> AdminError:
    return AdminError(f"a node holds {data_dir} but its admin channel is not answering ({why})")


def require_data_dir(data_dir: Path) -> None:
    """Refuse a directory that is not a lakenode data dir (opening would create one)."""
    if not (data_dir / "node_id").exists():
        raise AdminError(f"no lakenode data in {data_dir}")


class AdminChannel:
    """An authenticated client of a running node's admin socket."""

    def __init__(self, data_dir: Path, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self.data_dir = data_dir
        try:
            token = token_path(data_dir).read_text().strip()
        except OSError as exc:
            raise not_answering(data_dir, f"cannot read {token_path(data_dir)}: {exc}") from exc
        if not socket_path(data_dir).exists():
            raise not_answering(data_dir, f"no socket at {socket_path(data_dir)}")
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=unix_address(socket_path(data_dir))),
            base_url="http://lakenode-admin",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
        )

    async def __aenter__(self) -> AdminChannel:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str) -> dict[str, Any]:
        return await self._call("GET", path, None)

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call("POST", path, body)

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        try:
            answer = await self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise not_answering(self.data_dir, f"{type(exc).__name__}: {exc}") from exc
        document = _json_object(answer.content)
        if answer.status_code != 200:
            raise self._refused(answer.status_code, document)
        return document

    async def lines(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST, then each NDJSON line of the streamed answer."""
        try:
            async with self._client.stream(
                "POST", path, json=body, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
            ) as answer:
                if answer.status_code != 200:
                    raise self._refused(answer.status_code, _json_object(await answer.aread()))
                async for line in answer.aiter_lines():
                    if line.strip():
                        yield _json_object(line.encode())
        except httpx.TransportError as exc:
            raise not_answering(self.data_dir, f"{type(exc).__name__}: {exc}") from exc

    def _refused(self, status: int, document: Mapping[str, Any]) -> AdminError:
        message = str(document.get("error") or f"HTTP {status}")
        if status == 401:
            return AdminError(
                f"the node at {self.data_dir} refused our admin token ({message}); "
                "is the tool run as the node's user?"
            )
        return AdminError(message)


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise AdminError(f"the node's admin answer is not JSON: {data[:200]!r}") from exc
    if not isinstance(document, dict):
        raise AdminError(f"the node's admin answer is not a JSON object: {data[:200]!r}")
    return document


async def on_store_or_node(
    data_dir: Path,
    offline: Callable[[Store], Awaitable[T]],
    online: Callable[[AdminChannel], Awaitable[T]],
    timeout_s: float = ANSWER_TIMEOUT_S,
) -> T:
    """``offline(store)`` on a stopped data dir, else ``online(channel)`` with its node."""
    require_data_dir(data_dir)
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked:
        async with AdminChannel(data_dir, timeout_s) as channel:
            return await online(channel)
    try:
        return await offline(store)
    finally:
        await store.close()


async def run_job(
    data_dir: Path, name: str, params: dict[str, Any], progress: Progress
) -> JobReport:
    """Run job ``name`` on the data dir: in process if it is stopped, else by its node."""
    if name not in registered():
        raise AdminError(f"no job named {name!r} in this build")
    job = lookup(name)

    async def here(store: Store) -> JobReport:
        return await job.run(store, params, progress)

    async def there(channel: AdminChannel) -> JobReport:
        async for line in channel.lines(f"/admin/jobs/{name}", params):
            if "progress" in line:
                figures = line["progress"]
                total = figures.get("total")
                progress.advance(
                    int(figures["done"]),
                    None if total is None else int(total),
                    str(figures["unit"]),
                )
            elif "note" in line:
                progress.note(str(line["note"]))
            elif "report" in line:
                report: JobReport = line["report"]
                return report
            elif "error" in line:
                raise AdminError(f"{name} failed on the running node: {line['error']}")
        raise AdminError(f"the running node ended {name}'s stream without a report")

    return await on_store_or_node(data_dir, here, there)


async def set_maintenance(channel: AdminChannel, enabled: bool, timeout_s: float) -> dict[str, Any]:
    return await channel.post("/admin/maintenance", {"enabled": enabled, "timeout_s": timeout_s})
