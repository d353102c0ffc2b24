"""The replication endpoints a node serves to its peers, under ``/_lakenode/repl/``.

* ``GET info``: node id, last change-log seq, wall clock, protocol version.
* ``GET changes?after=SEQ&limit=N&exclude_origin=NODE``: a page of the change log in commit
  order (see replication/protocol.py for ``last_seq`` and ``more``).
* ``GET chunks/{blake3_hex}``: a chunk's bytes, verified against the digest before sending.
* ``PUT chunks/{blake3_hex}``: receive a chunk (pushed by a peer); stored only if it hashes
  to the digest in the URL.
* ``POST push?after=SEQ``: a pushing peer's changes page, applied like a pulled one.
* ``GET backlog?after=SEQ&exclude_origin=NODE``: ops, bytes and oldest HLC after SEQ.
* ``GET snapshot?after=TOKEN&limit=N``: a page of this node's current state as synthetic
  changes, for bootstrapping a new site (see handle_snapshot).

Every route first awaits ``authorize(request)`` (SigV4 and the replication permission live in
api/, which replication must not import; node/ passes the function in). Errors are JSON
``{"error": code, "message": text}``; this module never speaks S3 XML.

The routes that write (``PUT chunks``, ``push``) hold a ``write_slot()`` while they work:
node/ passes maintenance mode's write gate in, which raises :class:`WritesPaused` (503) while
writes are paused. Recording a peer's acknowledgement is skipped then (the peer says it again
on its next pull).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any, Final

import blake3
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from replication import protocol
from replication.ports import ReplicaStore
from replication.protocol import (
    BOOTSTRAP_REQUIRED,
    MAX_INT,
    MAX_PAGE_CHANGES,
    ChangesPage,
    PeerInfo,
    ProtocolError,
)
from storage.digest import DEPTH
from storage.sync.apply import ApplyResult, MissingChunks, ReplicationError
from storage.sync.feed import Change, LogPruned

log = logging.getLogger("lakenode.replication.routes")

ACKNOWLEDGED: Final = "acked"  # peer_cursors direction: how far a peer has applied our log
PREFIX: Final = "/_lakenode/repl"
DEFAULT_PAGE_LIMIT: Final = 500
_MAX_CHUNK_BATCH_REQUEST: Final = protocol.MAX_CHUNK_BATCH_DIGESTS * 70 + 64
MAX_FACT_KEYS: Final = 2000  # keys per validate --deep page (each with every version)
# A 409 lists at most this many missing digests (a page's manifests reference fewer).
MAX_MISSING_LISTED: Final = 100_000

_STATUS_CODES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "AccessDenied",
    404: "NotFound",
    409: "Conflict",
    411: "LengthRequired",
    413: "TooLarge",
    503: "Unavailable",
}

Authorize = Callable[[Request], Awaitable[None]]
Handler = Callable[[Request, ReplicaStore], Awaitable[Response]]
WriteSlot = Callable[[], AbstractContextManager[None]]


class StoreUnavailable(Exception):
    """Raised by the store accessor while the node is starting or stopping."""


class RouteError(Exception):
    """An error answer: HTTP status, a short code and a message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class WritesPaused(RouteError):
    """Raised by a write slot while the node's writes are paused (maintenance mode)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "Maintenance", message)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def build_router(
    store: Callable[[], ReplicaStore],
    authorize: Authorize,
    *,
    max_skew_ms: int = 1000,
    write_slot: WriteSlot = nullcontext,
) -> APIRouter:
    """The replication routes; ``store()`` raises StoreUnavailable while there is none."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def run(request: Request, handler: Handler) -> Response:
        try:
            await authorize(request)
            return await handler(request, store())
        except HTTPException as exc:
            code = _STATUS_CODES.get(exc.status_code, "Error")
            return error_response(exc.status_code, code, str(exc.detail))
        except RouteError as exc:
            return error_response(exc.status, exc.code, exc.message, **exc.extra)
        except ProtocolError as exc:
            return error_response(400, "ProtocolError", str(exc))
        except StoreUnavailable:
            return error_response(503, "Unavailable", "the node's store is not open")
        except LogPruned as exc:
            return error_response(
                410, BOOTSTRAP_REQUIRED, str(exc), pruned_through=exc.pruned_through
            )

    async def push(request: Request, current: ReplicaStore) -> Response:
        with write_slot():
            return await handle_push(request, current, max_skew_ms)

    async def put_chunk(request: Request, current: ReplicaStore) -> Response:
        with write_slot():
            return await handle_put_chunk(request, current)

    async def changes(request: Request, current: ReplicaStore) -> Response:
        return await handle_changes(request, current, write_slot)

    routes: tuple[tuple[str, str, Handler], ...] = (
        ("GET", "/info", handle_info),
        ("GET", "/changes", changes),
        ("GET", "/chunks/{digest_hex}", handle_get_chunk),
        ("POST", "/chunks", handle_chunk_batch),
        ("PUT", "/chunks/{digest_hex}", put_chunk),
        ("POST", "/push", push),
        ("GET", "/digest", handle_digest),
        ("GET", "/backlog", handle_backlog),
        ("GET", "/snapshot", handle_snapshot),
    )
    for method, path, handler in routes:
        router.add_api_route(path, _endpoint(run, handler), methods=[method])
    return router


def _endpoint(
    run: Callable[[Request, Handler], Awaitable[Response]], handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that authorizes, then runs ``handler`` (errors as JSON, see ``run``)."""

    async def endpoint(request: Request) -> Response:
        return await run(request, handler)

    return endpoint


# ---- handlers ---------------------------------------------------------------------------------


async def handle_info(_request: Request, store: ReplicaStore) -> Response:
    info = PeerInfo(
        node_id=store.node_id, last_seq=await store.last_seq(), now_ms=store.time_source.wall_ms()
    )
    return JSONResponse(protocol.info_to_json(info))


async def handle_changes(
    request: Request, store: ReplicaStore, write_slot: WriteSlot = nullcontext
) -> Response:
    params = request.query_params
    after = _query_int(params.get("after"), "after", 0)
    # A larger limit than a page may hold is not an error: the page says ``more``.
    limit = min(_query_int(params.get("limit"), "limit", DEFAULT_PAGE_LIMIT), MAX_PAGE_CHANGES)
    if limit < 1:
        raise RouteError(400, "BadRequest", "limit must be at least 1")
    exclude = params.get("exclude_origin")
    if exclude is not None and not protocol.is_node_id(exclude):
        raise RouteError(400, "BadRequest", "exclude_origin must be a node id")
    if exclude is not None and after > 0:
        # In maintenance nothing writes: the peer acknowledges again on its next pull.
        with suppress(WritesPaused), write_slot():
            await record_acknowledgement(store, exclude, after)
    page = await read_page(store, after, limit, exclude)
    return Response(protocol.encode_page(page), media_type="application/json")


async def record_acknowledgement(store: ReplicaStore, peer: str, after: int) -> None:
    """A peer asking for changes after SEQ has durably applied everything up to SEQ (its
    cursor moves only in the transaction that applies a batch): remember that, on disk, as
    the base of lag, backlog, replication status and tombstone GC. Written only when it
    moves, so polling costs no commit."""
    if after > await store.get_cursor(peer, ACKNOWLEDGED):
        await store.set_cursor(peer, ACKNOWLEDGED, after)


async def read_page(
    store: ReplicaStore, after: int, limit: int, exclude_origin: str | None
) -> ChangesPage:
    """The page after ``after``: whole log up to ``last_seq``, in commit order, bounded in size.

    ``last_seq`` is read before the changes: everything up to it is committed and therefore in
    the query's snapshot, so an untruncated page covers the log up to max(it, last change).
    """
    log_end = await store.last_seq()
    changes = await store.changes_after(after, limit, exclude_origin)
    more = len(changes) >= limit
    fitted = fit_changes(changes, protocol.MAX_PAGE_BYTES // 2)
    if len(fitted) < len(changes):
        changes, more = fitted, True
    # Truncated: up to the last change sent. Whole: up to the end of the log as read.
    last_seq = changes[-1].seq if more else max([log_end, *(change.seq for change in changes)])
    return ChangesPage(
        node_id=store.node_id,
        changes=changes,
        last_seq=last_seq,
        more=more,
        now_ms=store.time_source.wall_ms(),
    )


def fit_changes(changes: list[Change], budget: int) -> list[Change]:
    """The longest prefix whose encoding fits in ``budget`` bytes (always at least one)."""
    used = 0
    for index, change in enumerate(changes):
        used += len(protocol.dumps(protocol.change_to_json(change))) + 1
        if used > budget and index > 0:
            return changes[:index]
    return changes


async def handle_get_chunk(request: Request, store: ReplicaStore) -> Response:
    digest_hex = request.path_params["digest_hex"]
    digest = protocol.parse_hex_digest(digest_hex)
    data = await store.read_chunk_by_hash(digest)
    if data is None:
        raise RouteError(404, "NoSuchChunk", f"no chunk {digest_hex}")
    return Response(data, media_type="application/octet-stream")


async def handle_chunk_batch(request: Request, store: ReplicaStore) -> Response:
    """Many small chunks in one answer (protocol: chunk batches), at most
    MAX_CHUNK_BATCH_BYTES of data; the client fetches what is left out one by one."""
    body = await read_body(request, _MAX_CHUNK_BATCH_REQUEST)
    digests = protocol.parse_chunk_batch_request(protocol.loads(body, limit=len(body)))
    frames: list[bytes] = []
    size = 0
    for digest in dict.fromkeys(digests):
        data = await store.read_chunk_by_hash(digest)
        if data is not None and frames and size + len(data) > protocol.MAX_CHUNK_BATCH_BYTES:
            break
        frames.append(protocol.encode_chunk_frame(digest, data))
        size += len(data) if data is not None else 0
    return Response(b"".join(frames), media_type="application/octet-stream")


async def handle_put_chunk(request: Request, store: ReplicaStore) -> Response:
    digest_hex = request.path_params["digest_hex"]
    digest = protocol.parse_hex_digest(digest_hex)
    data = await read_body(request, protocol.MAX_CHUNK_BYTES)
    if not data:
        raise RouteError(400, "BadRequest", "a chunk cannot be empty")
    if blake3.blake3(data).digest() != digest:
        raise RouteError(400, "ChunkMismatch", f"the body does not hash to {digest_hex}")
    await store.store_chunk(data)
    return JSONResponse({"stored": digest_hex, "size": len(data)})


async def handle_push(request: Request, store: ReplicaStore, max_skew_ms: int) -> Response:
    """Apply a pushed page, which must continue from where this node is in the pusher's log.

    A pushed page and a pulled page of the same peer's log are the same thing, so both move
    the one cursor ``(peer, 'pull')``: a page starting past it would leave a gap (409
    CursorMismatch with the cursor to resend from), one ending before it is already held.
    """
    after = _query_int(request.query_params.get("after"), "after", None)
    page = protocol.decode_page(await read_body(request, protocol.MAX_PAGE_BYTES))
    if page.node_id == store.node_id:
        raise RouteError(400, "BadRequest", "a node cannot push its own change log to itself")
    if page.changes and page.changes[0].seq <= after:
        raise RouteError(400, "BadRequest", "the page holds changes at or before 'after'")
    if store.repulls_own_changes(page.node_id):
        # Restored from a snapshot: our own lost writes are in the pusher's log, and a pushed
        # page (which leaves them out) would move the cursor past them before we pull them.
        raise RouteError(
            409,
            "Recovering",
            f"this node was restored from a snapshot and first pulls its own changes back from"
            f" {page.node_id} (its --peer pull, or lakenode repl pull): push after that",
        )
    cursor = await store.get_cursor(page.node_id, "pull")
    if after > cursor:
        raise RouteError(
            409, "CursorMismatch", f"this node holds {page.node_id} up to {cursor}", cursor=cursor
        )
    if page.last_seq <= cursor:
        return JSONResponse(_result_json(ApplyResult(), cursor))
    missing = await store.missing_chunks(protocol.chunk_digests(page.changes))
    if missing:
        raise _missing(missing)
    try:
        result = await store.apply_remote(page.node_id, page.changes, page.last_seq, max_skew_ms)
    except MissingChunks as exc:
        raise _missing(exc.digests) from exc
    except ReplicationError as exc:
        raise RouteError(400, "CannotApply", str(exc)) from exc
    return JSONResponse(_result_json(result, page.last_seq))


async def handle_digest(request: Request, store: ReplicaStore) -> Response:
    """Merkle digests for validate: ?prefix=HEX&part=node|children|leaves."""
    prefix = request.query_params.get("prefix", "")
    part = request.query_params.get("part", "node")
    if len(prefix) > DEPTH or any(c not in "0123456789abcdef" for c in prefix):
        raise RouteError(400, "BadRequest", f"prefix must be at most {DEPTH} lowercase hex digits")
    if part == "node":
        return JSONResponse({"digest": (await store.digest_node(prefix)).hex()})
    if part == "children" and len(prefix) < DEPTH:
        children = await store.digest_children(prefix)
        return JSONResponse({"children": {k: v.hex() for k, v in children.items()}})
    if part == "key":
        bucket, key = _required(request, "bucket"), _required(request, "key")
        facts = await store.key_facts(bucket, key)
        cutoff = await store.purge_cutoff()
        return JSONResponse({"facts": protocol.facts_to_json(facts), "purge_cutoff": cutoff})
    if part == "facts":
        after = request.query_params.get("after_bucket"), request.query_params.get("after_key")
        limit = min(_query_int(request.query_params.get("limit"), "limit", 500), MAX_FACT_KEYS)
        start = (after[0], after[1]) if after[0] is not None and after[1] is not None else None
        page = await store.facts_page(start, max(1, limit))
        return JSONResponse({"keys": [protocol.facts_to_json(f) for f in page]})
    if part == "leaves" and len(prefix) == DEPTH:
        leaves = await store.digest_leaves(prefix)
        return JSONResponse({"leaves": [[x.bucket, x.key, x.leaf.hex()] for x in leaves]})
    raise RouteError(400, "BadRequest", f"part {part!r} does not apply to prefix {prefix!r}")


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None:
        raise RouteError(400, "BadRequest", f"{name} is required")
    return value


async def handle_backlog(request: Request, store: ReplicaStore) -> Response:
    """What this node's log holds after ?after=SEQ, leaving out ?exclude_origin=NODE:
    {"ops", "bytes", "oldest_hlc"} (read from disk; a puller's lag and backlog)."""
    params = request.query_params
    after = _query_int(params.get("after"), "after", 0)
    exclude = params.get("exclude_origin")
    if exclude is not None and not protocol.is_node_id(exclude):
        raise RouteError(400, "BadRequest", "exclude_origin must be a node id")
    pending = await store.repl_backlog(after, exclude)
    return JSONResponse(
        {"ops": pending.ops, "bytes": pending.bytes, "oldest_hlc": pending.oldest_hlc}
    )


async def handle_snapshot(request: Request, store: ReplicaStore) -> Response:
    """A page of this node's current state for a bootstrapping site.

    The state comes from storage/sync/bootstrap_state.py.
    ``?after=`` absent or empty starts a snapshot: the page then carries ``snapshot_seq``,
    this node's last seq read *before* the state, from which the new site pulls the log
    afterwards (and ``objects_total``, for its progress). Later pages pass the ``next`` token.
    """
    params = request.query_params
    token = params.get("after") or None
    limit = min(_query_int(params.get("limit"), "limit", DEFAULT_PAGE_LIMIT), MAX_PAGE_CHANGES)
    if limit < 1:
        raise RouteError(400, "BadRequest", "limit must be at least 1")
    after = None if token is None else protocol.decode_position(token)
    snapshot_seq = objects_total = None
    if after is None:
        snapshot_seq = await store.last_seq()  # before the state is read: see above
        objects_total = await store.count_versions()
    changes, position = await store.snapshot_page(after, limit)
    page = protocol.SnapshotPage(
        node_id=store.node_id,
        changes=changes,
        next=None if position is None else protocol.encode_position(position),
        snapshot_seq=snapshot_seq,
        objects_total=objects_total,
        now_ms=store.time_source.wall_ms(),
    )
    return Response(
        protocol.dumps(protocol.snapshot_page_to_json(page)), media_type="application/json"
    )


def _missing(digests: set[bytes]) -> RouteError:
    listed = sorted(digest.hex() for digest in digests)[:MAX_MISSING_LISTED]
    return RouteError(409, "MissingChunks", f"{len(digests)} chunk(s) missing", missing=listed)


def _result_json(result: ApplyResult, cursor: int) -> dict[str, int]:
    return {
        "applied": result.applied,
        "duplicates": result.duplicates,
        "conflicts": result.conflicts,
        "skew_rejected": result.skew_rejected,
        "cursor": cursor,
    }


# ---- request helpers --------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) one larger than ``limit`` before and while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise RouteError(413, "TooLarge", f"body larger than {limit} bytes")
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise RouteError(413, "TooLarge", f"body larger than {limit} bytes")
        pieces.append(piece)
    return b"".join(pieces)


def _query_int(text: str | None, name: str, default: int | None) -> int:
    """A non-negative integer query parameter (``default`` None: required)."""
    if text is None:
        if default is None:
            raise RouteError(400, "BadRequest", f"query parameter {name!r} is required")
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_INT:
        raise RouteError(400, "BadRequest", f"{name} must be an integer from 0 to {MAX_INT}")
    return int(text)
