"""The metadata journal: what rebuild-index needs besides manifests, in the segment stream.

Every commit appends, with its manifests and before the same fsync (storage/commit.py),
one JOURNAL record per change-log row it wrote and one per multipart-upload step. So every
fact the catalog holds about buckets, bucket documents, tags, version deletes, uploads and
the change log itself is durable in the segments before it is committed, exactly like
object data, and a lost ``meta.db`` can be rebuilt from the segments alone
(storage/ops/rebuild.py). Access keys are written outside the group commit and have their own
journal file (storage/key_journal.py).

A JOURNAL record's payload is ``b"LKJ1"`` followed by one compact JSON object; the segment
record's BLAKE3 covers it, and decoding checks the magic and every field's type. Kinds
(``"t"``):

* ``change``: one change-log row: ``seq`` (its position in this node's log), ``hlc``,
  ``origin``, ``op``, ``bucket``, ``key``, ``version_id``, ``size``, ``etag``, ``payload``
  and ``manifest`` (true when the row carries a manifest: it is the MANIFEST record with the
  same ``(origin, hlc)``, written just before);
* ``upload.create``, ``upload.part`` (with the part's manifest, base64), ``upload.done``
  (completed or aborted): multipart uploads in progress, which the change log never holds.

Segment GC must keep JOURNAL records like tombstones: an entry may go only when a later
entry for the same thing supersedes it (see docs/ops.md, "rebuild-index").
"""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from storage.errors import FormatError
from storage.hlc import Timestamp
from storage.segments import RecordKind
from storage.uploads import UploadInfo

MAGIC: Final = b"LKJ1"
CHANGE: Final = "change"
UPLOAD_CREATE: Final = "upload.create"
UPLOAD_PART: Final = "upload.part"
UPLOAD_DONE: Final = "upload.done"
MANIFEST_OPS: Final = frozenset({"object.put", "object.delete"})

Record = tuple[RecordKind, bytes]


def encode(entry: dict[str, Any]) -> bytes:
    return MAGIC + json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def decode(payload: bytes) -> dict[str, Any]:
    """A journal entry, checked; FormatError on any defect."""
    if payload[: len(MAGIC)] != MAGIC:
        raise FormatError("not a journal entry (bad magic)")
    try:
        entry = json.loads(payload[len(MAGIC) :])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"journal entry is not JSON: {exc}") from exc
    if not isinstance(entry, dict):
        raise FormatError("journal entry is not an object")
    _check(entry, _COMMON)
    kind = entry["t"]
    if kind not in _FIELDS:
        raise FormatError(f"unknown journal entry kind {kind!r}")
    _check(entry, _FIELDS[kind])
    return entry


_COMMON: Final[dict[str, tuple[type, ...]]] = {"t": (str,), "hlc": (int,), "origin": (str,)}
_OPTIONAL_STR: Final = (str, type(None))
_OPTIONAL_INT: Final = (int, type(None))
_FIELDS: Final[dict[str, dict[str, tuple[type, ...]]]] = {
    CHANGE: {
        "seq": (int,), "op": (str,), "bucket": (str,), "key": _OPTIONAL_STR,
        "version_id": _OPTIONAL_STR, "size": _OPTIONAL_INT, "etag": _OPTIONAL_STR,
        "payload": (dict, type(None)), "manifest": (bool,),
    },
    UPLOAD_CREATE: {
        "upload_id": (str,), "bucket": (str,), "key": (str,), "initiated_ms": (int,),
        "owner": (str,), "headers": (list,), "checksum": (str,),
    },
    UPLOAD_PART: {"upload_id": (str,), "part_number": (int,), "manifest": (str,)},
    UPLOAD_DONE: {"upload_id": (str,)},
}  # fmt: skip


def _check(entry: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    for name, types in fields.items():
        value = entry.get(name)
        # bool is an int subclass: a flag must not pass for a number, nor the reverse.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise FormatError(f"journal entry field {name!r} is missing or malformed")


# ---- what a commit appends ---------------------------------------------------------------------


def log_end(conn: sqlite3.Connection) -> int:
    """The last seq of the change log (the batch's changes will come after it)."""
    (value,) = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
    return int(value)


def change_records(conn: sqlite3.Connection, after_seq: int) -> list[Record]:
    """The records for the change-log rows after ``after_seq`` (this batch's), in log order:
    per row its manifest, if it has one, then its journal entry."""
    records: list[Record] = []
    rows = conn.execute(
        "SELECT seq, hlc, origin, op, bucket, key, version_id, size, etag, manifest, payload"
        " FROM changes WHERE seq > ? ORDER BY seq",
        (after_seq,),
    )
    for seq, hlc, origin, op, bucket, key, version_id, size, etag, manifest, payload in rows:
        if manifest is not None:
            records.append((RecordKind.MANIFEST, bytes(manifest)))
        entry = {
            "t": CHANGE, "seq": seq, "hlc": hlc, "origin": origin, "op": op, "bucket": bucket,
            "key": key, "version_id": version_id, "size": size, "etag": etag,
            "payload": json.loads(payload) if payload else None,
            "manifest": manifest is not None,
        }  # fmt: skip
        records.append((RecordKind.JOURNAL, encode(entry)))
    return records


def _stamped(kind: str, stamp: Timestamp, **fields: Any) -> bytes:
    return encode({"t": kind, "hlc": stamp.pack(), "origin": stamp.node_id, **fields})


def upload_created(stamp: Timestamp, upload: UploadInfo) -> bytes:
    return _stamped(
        UPLOAD_CREATE,
        stamp,
        upload_id=upload.upload_id,
        bucket=upload.bucket,
        key=upload.key,
        initiated_ms=upload.initiated_ms,
        owner=upload.owner,
        headers=[list(pair) for pair in upload.headers],
        checksum=upload.checksum,
    )


def part_stored(stamp: Timestamp, upload_id: str, part_number: int, manifest: bytes) -> bytes:
    encoded = base64.b64encode(manifest).decode("ascii")
    return _stamped(
        UPLOAD_PART, stamp, upload_id=upload_id, part_number=part_number, manifest=encoded
    )


def upload_done(stamp: Timestamp, upload_id: str) -> bytes:
    return _stamped(UPLOAD_DONE, stamp, upload_id=upload_id)


@dataclass(frozen=True)
class PartEntry:
    upload_id: str
    part_number: int
    manifest: bytes


def part_entry(entry: dict[str, Any]) -> PartEntry:
    try:
        manifest = base64.b64decode(entry["manifest"], validate=True)
    except ValueError as exc:
        raise FormatError("journal part entry: manifest is not base64") from exc
    return PartEntry(str(entry["upload_id"]), int(entry["part_number"]), manifest)
