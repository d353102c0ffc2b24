"""The replication wire format: JSON pages of changes. Pure: no I/O.

A page is what ``GET /_lakenode/repl/changes`` answers and what ``POST /_lakenode/repl/push``
carries::

    {"protocol": 1, "node_id": "...", "changes": [...], "last_seq": 42, "more": false,
     "now_ms": 1700000000000}

``last_seq`` is how far into the serving node's change log the page reaches: the receiver's
cursor after applying it. It can be beyond the last change listed, because changes that
originated at the receiver are left out (never sent home) but still passed over.

Everything received is validated here before any of it is used, and strictly: a peer may be
buggy, of another version, or hostile. A page that fails validation raises
:class:`ProtocolError` and nothing of it is applied.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from storage.digest import KeyFacts, VersionFact
from storage.errors import FormatError
from storage.lock_state import BadLockState
from storage.manifest import decode as decode_manifest
from storage.sync.apply_locks import LOCK_OP, payload_lock
from storage.sync.feed import Change

PROTOCOL_VERSION: Final = 1
MAX_PAGE_CHANGES: Final = 1000
MAX_MANIFEST_BYTES: Final = 16 << 20
# A page's encoded size: the server stops filling a page at the first change that would take
# it past this, the client refuses to read more, the push route refuses bigger bodies.
MAX_PAGE_BYTES: Final = 64 << 20
# A chunk is 4 MiB today; the bound only protects a receiver from a peer sending without end.
MAX_CHUNK_BYTES: Final = 64 << 20
MAX_PAYLOAD_BYTES: Final = 1 << 20
MAX_INT: Final = (1 << 63) - 1  # SQLite INTEGER
# Error code (HTTP 410) for a cursor older than the pruned part of the log.
BOOTSTRAP_REQUIRED: Final = "BootstrapRequired"
DIGEST_BYTES: Final = 32

_NODE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OP = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
# Longest accepted text fields, in UTF-8 bytes. S3 keys are at most 1024 bytes; the looser
# bound keeps a key the API would refuse from stopping replication for good.
_TEXT_LIMITS: Final = {"bucket": 255, "key": 4096, "version_id": 255, "etag": 255}


class ProtocolError(Exception):
    """The peer sent something this node does not understand or will not accept."""


@dataclass(frozen=True)
class ChangesPage:
    node_id: str
    changes: list[Change]
    last_seq: int
    more: bool
    now_ms: int
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class PeerInfo:
    node_id: str
    last_seq: int
    now_ms: int
    protocol: int = PROTOCOL_VERSION


# ---- encoding ---------------------------------------------------------------------------------


def change_to_json(change: Change) -> dict[str, Any]:
    manifest = change.manifest
    return {
        "seq": change.seq,
        "hlc": change.hlc,
        "origin": change.origin,
        "op": change.op,
        "bucket": change.bucket,
        "key": change.key,
        "version_id": change.version_id,
        "size": change.size,
        "etag": change.etag,
        "manifest": None if manifest is None else base64.b64encode(manifest).decode("ascii"),
        "payload": change.payload,
    }


def page_to_json(page: ChangesPage) -> dict[str, Any]:
    return {
        "protocol": page.protocol,
        "node_id": page.node_id,
        "changes": [change_to_json(change) for change in page.changes],
        "last_seq": page.last_seq,
        "more": page.more,
        "now_ms": page.now_ms,
    }


def encode_page(page: ChangesPage) -> bytes:
    return dumps(page_to_json(page))


def info_to_json(info: PeerInfo) -> dict[str, Any]:
    return {
        "protocol": info.protocol,
        "node_id": info.node_id,
        "last_seq": info.last_seq,
        "now_ms": info.now_ms,
    }


def dumps(document: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities cannot occur in what we send, so refuse them."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


# ---- decoding ---------------------------------------------------------------------------------


def loads(data: bytes, limit: int = MAX_PAGE_BYTES) -> Any:
    """Parse JSON received from a peer (bounded size, no NaN/Infinity)."""
    if len(data) > limit:
        raise ProtocolError(f"document of {len(data)} bytes exceeds the limit of {limit}")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from exc


def _refuse_constant(name: str) -> None:
    raise ProtocolError(f"malformed JSON: {name} is not allowed")


def decode_page(data: bytes) -> ChangesPage:
    return page_from_json(loads(data))


def page_from_json(document: Any) -> ChangesPage:
    """Validate a changes page completely; any defect raises ProtocolError."""
    fields = _object(document, "page")
    _check_protocol(fields)
    raw_changes = fields.get("changes")
    if not isinstance(raw_changes, list):
        raise ProtocolError("page: 'changes' must be a list")
    if len(raw_changes) > MAX_PAGE_CHANGES:
        raise ProtocolError(
            f"page: {len(raw_changes)} changes exceed the limit of {MAX_PAGE_CHANGES}"
        )
    changes = [change_from_json(item, index) for index, item in enumerate(raw_changes)]
    last_seq = _int(fields, "last_seq", "page")
    _check_order(changes, last_seq)
    more = fields.get("more")
    if not isinstance(more, bool):
        raise ProtocolError("page: 'more' must be a boolean")
    return ChangesPage(
        node_id=_node_id(fields, "node_id", "page"),
        changes=changes,
        last_seq=last_seq,
        more=more,
        now_ms=_int(fields, "now_ms", "page"),
    )


def info_from_json(document: Any) -> PeerInfo:
    fields = _object(document, "info")
    _check_protocol(fields)
    return PeerInfo(
        node_id=_node_id(fields, "node_id", "info"),
        last_seq=_int(fields, "last_seq", "info"),
        now_ms=_int(fields, "now_ms", "info"),
    )


def change_from_json(document: Any, index: int = 0) -> Change:
    where = f"change #{index}"
    fields = _object(document, where)
    unknown = set(fields) - _CHANGE_FIELDS
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    op = fields.get("op")
    if not isinstance(op, str) or not _OP.fullmatch(op):
        raise ProtocolError(f"{where}: 'op' must be an operation name, got {op!r:.80}")
    bucket = _text(fields, "bucket", where)
    if bucket is None:
        raise ProtocolError(f"{where}: 'bucket' is required")
    change = Change(
        seq=_int(fields, "seq", where),
        hlc=_int(fields, "hlc", where),
        origin=_node_id(fields, "origin", where),
        op=op,
        bucket=bucket,
        key=_text(fields, "key", where),
        version_id=_text(fields, "version_id", where),
        size=_optional_int(fields, "size", where),
        etag=_text(fields, "etag", where),
        manifest=_manifest(fields, where),
        payload=_payload(fields, where),
    )
    _check_lock(change, where)
    return change


def _check_lock(change: Change, where: str) -> None:
    """Object lock state a change carries must be well formed: a peer's malformed lock would
    otherwise stop replication at apply time, or worse, be merged."""
    if change.op == LOCK_OP and (change.key is None or change.version_id is None):
        raise ProtocolError(f"{where}: {LOCK_OP} needs 'key' and 'version_id'")
    try:
        payload_lock(change.op, change.payload)
    except BadLockState as exc:
        raise ProtocolError(f"{where}: bad object lock state: {exc}") from exc


_CHANGE_FIELDS: Final = frozenset(
    {"seq", "hlc", "origin", "op", "bucket", "key", "version_id", "size", "etag"}
    | {"manifest", "payload"}
)


def chunk_digests(changes: Iterable[Change]) -> set[bytes]:
    """The BLAKE3 digests of every chunk the changes' manifests reference."""
    return set(chunk_sizes(changes))


def chunk_sizes(changes: Iterable[Change]) -> dict[bytes, int]:
    """Every chunk the changes' manifests reference: BLAKE3 digest -> length."""
    sizes: dict[bytes, int] = {}
    for change in changes:
        if change.manifest is None:
            continue
        try:
            manifest = decode_manifest(change.manifest)
        except FormatError as exc:
            raise ProtocolError(f"change seq {change.seq}: bad manifest: {exc}") from exc
        sizes.update((chunk.blake3, chunk.length) for chunk in manifest.chunks)
    return sizes


# ---- chunk batches: many small chunks in one request ------------------------------------------
#
# POST chunks {"digests": [hex, ...]} answers frames, in the order asked:
#     32-byte digest | u32 length (NOT_FOUND if the node lacks it) | the chunk's bytes
# The server stops adding frames once the answer holds MAX_CHUNK_BATCH_BYTES of data; the
# client fetches what was left out one by one. One request per page of small objects instead
# of one per chunk: the cost that dominated catching up on a backlog of small writes.

MAX_CHUNK_BATCH_BYTES: Final = 4 << 20
MAX_CHUNK_BATCH_DIGESTS: Final = 1024
SMALL_CHUNK_BYTES: Final = 1 << 20  # larger chunks are fetched alone (streamed, bounded)
CHUNK_NOT_FOUND: Final = 0xFFFFFFFF
_FRAME = struct.Struct("<32sI")


def encode_chunk_frame(digest: bytes, data: bytes | None) -> bytes:
    if data is None:
        return _FRAME.pack(digest, CHUNK_NOT_FOUND)
    return _FRAME.pack(digest, len(data)) + data


def decode_chunk_frames(body: bytes, asked: Iterable[bytes]) -> dict[bytes, bytes]:
    """The chunks found in a batch answer (digest -> bytes), checked against what was asked."""
    wanted = set(asked)
    found: dict[bytes, bytes] = {}
    view, offset = memoryview(body), 0
    while offset < len(body):
        if offset + _FRAME.size > len(body):
            raise ProtocolError("chunk batch answer ends inside a frame header")
        digest, length = _FRAME.unpack_from(view, offset)
        offset += _FRAME.size
        if digest not in wanted:
            raise ProtocolError(f"chunk batch answer holds a chunk not asked for: {digest.hex()}")
        if length == CHUNK_NOT_FOUND:
            continue
        if offset + length > len(body):
            raise ProtocolError("chunk batch answer ends inside a chunk")
        found[digest] = bytes(view[offset : offset + length])
        offset += length
    return found


def parse_chunk_batch_request(document: Any) -> list[bytes]:
    digests = _object(document, "chunk batch").get("digests")
    if not isinstance(digests, list) or not 1 <= len(digests) <= MAX_CHUNK_BATCH_DIGESTS:
        raise ProtocolError(f"digests must be a list of 1 to {MAX_CHUNK_BATCH_DIGESTS} hex digests")
    if not all(isinstance(text, str) for text in digests):
        raise ProtocolError("digests must be hex strings")
    return [parse_hex_digest(text) for text in digests]


def parse_hex_digest(text: str) -> bytes:
    """A BLAKE3 digest from its 64 lower-case hex digits (the form used in URLs)."""
    if not _HEX_DIGEST.fullmatch(text):
        raise ProtocolError("a chunk digest is 64 lower-case hex digits")
    return bytes.fromhex(text)


def parse_digest_list(document: Any, limit: int) -> set[bytes]:
    """The ``missing`` list of a 409 answer to a push."""
    if not isinstance(document, list) or len(document) > limit:
        raise ProtocolError(f"'missing' must be a list of at most {limit} digests")
    if not all(isinstance(item, str) for item in document):
        raise ProtocolError("'missing' must hold hex digests")
    return {parse_hex_digest(item) for item in document}


# ---- field helpers ----------------------------------------------------------------------------


def is_node_id(text: str) -> bool:
    return _NODE_ID.fullmatch(text) is not None


def _object(document: Any, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ProtocolError(f"{where}: expected a JSON object")
    return document


def _check_protocol(fields: Mapping[str, Any]) -> None:
    version = fields.get("protocol")
    if type(version) is not int:
        raise ProtocolError("'protocol' must be an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"peer speaks replication protocol {version}, this node speaks {PROTOCOL_VERSION}"
        )


def _check_order(changes: list[Change], last_seq: int) -> None:
    """Commit order: seqs strictly increase and none is beyond the page's last_seq."""
    previous = -1
    for change in changes:
        if change.seq <= previous:
            raise ProtocolError(f"page: seq {change.seq} after {previous} (not in log order)")
        previous = change.seq
    if changes and changes[-1].seq > last_seq:
        raise ProtocolError(f"page: last_seq {last_seq} is before change seq {changes[-1].seq}")


def _int(fields: Mapping[str, Any], name: str, where: str) -> int:
    value = fields.get(name)
    # bool is an int subclass: true must not pass for 1.
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise ProtocolError(f"{where}: {name!r} must be an integer in [0, 2^63), got {value!r:.40}")
    return value


def _optional_int(fields: Mapping[str, Any], name: str, where: str) -> int | None:
    return None if fields.get(name) is None else _int(fields, name, where)


def _node_id(fields: Mapping[str, Any], name: str, where: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise ProtocolError(f"{where}: {name!r} must be a node id, got {value!r:.80}")
    return value


def _text(fields: Mapping[str, Any], name: str, where: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: {name!r} must be a string")
    limit = _TEXT_LIMITS[name]
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:  # lone surrogates from \ud800 escapes
        raise ProtocolError(f"{where}: {name!r} is not valid Unicode") from exc
    if size > limit:
        raise ProtocolError(f"{where}: {name!r} is longer than {limit} bytes")
    return value


def _manifest(fields: Mapping[str, Any], where: str) -> bytes | None:
    value = fields.get("manifest")
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: 'manifest' must be base64 text")
    if len(value) > (MAX_MANIFEST_BYTES + 2) // 3 * 4:
        raise ProtocolError(f"{where}: manifest exceeds {MAX_MANIFEST_BYTES} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{where}: 'manifest' is not valid base64") from exc
    if not data:
        raise ProtocolError(f"{where}: empty manifest")
    return data


def _payload(fields: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    value = fields.get("payload")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: 'payload' must be a JSON object")
    if len(dumps(value)) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{where}: payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    return value


# ---- snapshot pages (bootstrap) ---------------------------------------------------------------

# A position token is URL-safe base64 of a JSON [bucket, key, version_id]; opaque to clients.
MAX_POSITION_CHARS: Final = 8192
_POSITION_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,8192}")


@dataclass(frozen=True)
class SnapshotPage:
    """A page of ``GET snapshot``: synthetic changes describing the peer's state (seq 0).

    ``next`` is where the following page starts (None: the state has been read to its end).
    ``snapshot_seq`` (the peer's last seq before the first page was read) and
    ``objects_total`` (its version rows then) come with the first page only.
    """

    node_id: str
    changes: list[Change]
    next: str | None
    snapshot_seq: int | None
    objects_total: int | None
    now_ms: int
    protocol: int = PROTOCOL_VERSION


def encode_position(position: tuple[str, str, str]) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_position(token: str) -> tuple[str, str, str]:
    """A position token from a client: refused (ProtocolError) unless it is well formed."""
    if not _POSITION_TOKEN.fullmatch(token):
        raise ProtocolError("a snapshot position is a token returned as 'next' by a page")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError("malformed snapshot position") from exc
    document = loads(raw, MAX_POSITION_CHARS)
    if not (
        isinstance(document, list)
        and len(document) == 3
        and all(isinstance(part, str) for part in document)
    ):
        raise ProtocolError("malformed snapshot position")
    bucket, key, version_id = document
    return bucket, key, version_id


def snapshot_page_to_json(page: SnapshotPage) -> dict[str, Any]:
    return {
        "protocol": page.protocol,
        "node_id": page.node_id,
        "changes": [change_to_json(change) for change in page.changes],
        "next": page.next,
        "snapshot_seq": page.snapshot_seq,
        "objects_total": page.objects_total,
        "now_ms": page.now_ms,
    }


def snapshot_page_from_json(document: Any) -> SnapshotPage:
    """Validate a snapshot page completely; any defect raises ProtocolError."""
    fields = _object(document, "snapshot page")
    _check_protocol(fields)
    raw_changes = fields.get("changes")
    if not isinstance(raw_changes, list):
        raise ProtocolError("snapshot page: 'changes' must be a list")
    if len(raw_changes) > MAX_PAGE_CHANGES + 2:  # a page ends after a whole entry
        raise ProtocolError(f"snapshot page: {len(raw_changes)} changes exceed the limit")
    changes = [change_from_json(item, index) for index, item in enumerate(raw_changes)]
    token = fields.get("next")
    if token is not None and (not isinstance(token, str) or not _POSITION_TOKEN.fullmatch(token)):
        raise ProtocolError("snapshot page: 'next' must be a position token or null")
    return SnapshotPage(
        node_id=_node_id(fields, "node_id", "snapshot page"),
        changes=changes,
        next=token,
        snapshot_seq=_optional_int(fields, "snapshot_seq", "snapshot page"),
        objects_total=_optional_int(fields, "objects_total", "snapshot page"),
        now_ms=_int(fields, "now_ms", "snapshot page"),
    )


# ---- key facts (validate: what each side holds, --deep chunk lists) --------------------------


def facts_to_json(facts: KeyFacts) -> list[Any]:
    return [
        facts.bucket,
        facts.key,
        [
            [v.version_id, v.hlc, v.origin, v.kind, v.etag, v.size, [c.hex() for c in v.chunks]]
            for v in facts.versions
        ],
    ]


def facts_from_json(document: Any) -> KeyFacts:
    if not (isinstance(document, list) and len(document) == 3):
        raise ProtocolError("key facts must be [bucket, key, versions]")
    bucket, key, versions = document
    if not (isinstance(bucket, str) and isinstance(key, str) and isinstance(versions, list)):
        raise ProtocolError("key facts must be [bucket, key, versions]")
    return KeyFacts(bucket, key, tuple(_version_fact(row) for row in versions))


def _version_fact(row: Any) -> VersionFact:
    shape = (str, int, str, int, str, int, list)
    if not (
        isinstance(row, list)
        and len(row) == len(shape)
        and all(type(value) is kind for value, kind in zip(row, shape, strict=True))
    ):
        raise ProtocolError("a version fact must be [id, hlc, origin, kind, etag, size, chunks]")
    if not all(isinstance(text, str) for text in row[6]):
        raise ProtocolError("chunk digests must be hex strings")
    chunks = tuple(parse_hex_digest(text) for text in row[6])
    return VersionFact(row[0], row[1], row[2], row[3], row[4], row[5], chunks)
