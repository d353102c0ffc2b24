"""Object lock writes: retention and legal hold changes, a new version's lock, locked deletes.

Every decision is taken inside the commit transaction (a mutation's ``apply``), against the
merged lock state stored by storage/locks.py, with the mutation's stamp as "now": a retention
that expires between a check and a commit cannot be misjudged, and two concurrent requests
cannot both pass a check that only one of them may pass. What may change is S3's rule:

* COMPLIANCE is only ever extended: shortening it, removing it or switching it to GOVERNANCE
  while it is in force raises :class:`ObjectLocked`, whoever asks (the root key included);
* GOVERNANCE may be extended by anyone allowed to set a retention; shortening it, removing
  it or switching it to COMPLIANCE while it is in force needs ``bypass_governance`` (the S3
  layer grants that flag only to a key allowed ``s3:BypassGovernanceRetention``);
* a legal hold is set or lifted by anyone allowed to; it blocks every removal while on.

The bucket's "object-lock" document (storage/bucket_config.py) is JSON in AWS's shape:
``{"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": M, "Days": N}}}``
(or ``"Years"``); its default retention applies to a version created without its own.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from storage import bucket_config, catalog, lock_deletes, locks
from storage.catalog import BucketInfo
from storage.commit import Outcome
from storage.errors import (
    InvalidBucketState,
    LockNotEnabled,
    LockOnDeleteMarker,
    NoSuchConfiguration,
    NoSuchKey,
    ObjectLocked,
)
from storage.hlc import LOGICAL_MAX, Timestamp
from storage.lock_state import MODES, LockState, Mode
from storage.lww import Stamp
from storage.manifest import Kind, Manifest

DAY_MS: Final = 86_400_000
YEAR_DAYS: Final = 365
LOCK_DOCUMENT: Final = "object-lock"
# Internal headers of a multipart upload created with lock settings: the settings wait with
# the upload and apply to the version its completion creates (never kept on the object).
UPLOAD_LOCK_PREFIX: Final = "x-lakenode-lock-"


@dataclass(frozen=True)
class LockRequest:
    """Lock settings sent with a write (``x-amz-object-lock-*``): mode and date go together."""

    mode: Mode | None = None
    until_ms: int | None = None
    legal_hold: bool = False

    @property
    def empty(self) -> bool:
        return self.mode is None and not self.legal_hold

    def upload_headers(self) -> tuple[tuple[str, str], ...]:
        """The settings as a multipart upload keeps them until its completion."""
        kept: list[tuple[str, str]] = []
        if self.mode is not None and self.until_ms is not None:
            kept += [(UPLOAD_LOCK_PREFIX + "mode", self.mode)]
            kept += [(UPLOAD_LOCK_PREFIX + "until", str(self.until_ms))]
        if self.legal_hold:
            kept.append((UPLOAD_LOCK_PREFIX + "hold", "ON"))
        return tuple(kept)


def request_from_upload(headers: tuple[tuple[str, str], ...]) -> LockRequest | None:
    """The settings :meth:`LockRequest.upload_headers` kept with an upload (None: none)."""
    values = {
        n[len(UPLOAD_LOCK_PREFIX) :]: v for n, v in headers if n.startswith(UPLOAD_LOCK_PREFIX)
    }
    if not values:
        return None
    mode = values.get("mode")
    until = values.get("until")
    return LockRequest(
        mode if mode in MODES else None,  # type: ignore[arg-type]
        int(until) if until is not None else None,
        values.get("hold") == "ON",
    )


def without_upload_lock(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(h for h in headers if not h[0].startswith(UPLOAD_LOCK_PREFIX))


@dataclass(frozen=True)
class BucketLock:
    """A bucket's ObjectLockConfiguration: enabled, with an optional default retention."""

    mode: Mode | None = None
    days: int | None = None
    years: int | None = None

    def default_until(self, created_ms: int) -> int | None:
        if self.mode is None:
            return None
        days = self.days if self.days is not None else (self.years or 0) * YEAR_DAYS
        return created_ms + days * DAY_MS

    def dumps(self) -> str:
        document: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        if self.mode is not None:
            period = {"Days": self.days} if self.days is not None else {"Years": self.years}
            document["Rule"] = {"DefaultRetention": {"Mode": self.mode, **period}}
        return json.dumps(document, sort_keys=True)


def parse_bucket_lock(text: str) -> BucketLock:
    """The stored document back (written by :meth:`BucketLock.dumps`, locally or remotely)."""
    rule = json.loads(text).get("Rule", {}).get("DefaultRetention")
    if not rule:
        return BucketLock()
    return BucketLock(rule["Mode"], rule.get("Days"), rule.get("Years"))


def bucket_lock(conn: sqlite3.Connection, bucket: str) -> BucketLock | None:
    """The bucket's lock configuration, None if object lock is not enabled on it."""
    try:
        return parse_bucket_lock(bucket_config.get_bucket_document(conn, bucket, LOCK_DOCUMENT))
    except NoSuchConfiguration:
        return None


def next_stamp(stamp: Timestamp) -> Timestamp:
    """The stamp right after ``stamp`` on the same node (for a mutation's extra change rows;
    the mutation returns it as ``Outcome.last_stamp`` so the clock moves past it)."""
    if stamp.logical < LOGICAL_MAX:
        return Timestamp(stamp.wall_ms, stamp.logical + 1, stamp.node_id)
    return Timestamp(stamp.wall_ms + 1, 0, stamp.node_id)


def lww_stamp(stamp: Timestamp) -> Stamp:
    return Stamp(stamp.pack(), stamp.node_id)


def amend_payload(conn: sqlite3.Connection, stamp: Timestamp, extra: dict[str, Any]) -> None:
    """Add ``extra`` to the payload of the change row this stamp wrote (one row per stamp)."""
    row = conn.execute(
        "SELECT payload FROM changes WHERE hlc = ? AND origin = ?", (stamp.pack(), stamp.node_id)
    ).fetchone()
    assert row is not None, "amend_payload needs the mutation's change row"
    payload = {**(json.loads(row[0]) if row[0] else {}), **extra}
    conn.execute(
        "UPDATE changes SET payload = ? WHERE hlc = ? AND origin = ?",
        (json.dumps(payload, sort_keys=True), stamp.pack(), stamp.node_id),
    )


def _retention_state(stamp: Timestamp, mode: Mode, until_ms: int | None) -> LockState:
    if mode == "COMPLIANCE":
        return LockState(compliance_until_ms=until_ms)
    return LockState(governance=(lww_stamp(stamp), until_ms))


def lock_new_version(
    conn: sqlite3.Connection, stamp: Timestamp, manifest: Manifest, request: LockRequest | None
) -> None:
    """Lock a version just written (its object.put row has this stamp): its own settings, or
    else the bucket's default retention; the merged state rides in the change's payload."""
    config = bucket_lock(conn, manifest.bucket)
    if request is not None and not request.empty and config is None:
        raise LockNotEnabled(manifest.bucket)
    if config is None:
        return
    state = LockState()
    if request is not None and request.mode is not None:
        state = _retention_state(stamp, request.mode, request.until_ms)
    elif config.mode is not None:
        state = _retention_state(stamp, config.mode, config.default_until(stamp.wall_ms))
    if request is not None and request.legal_hold:
        state = state.with_hold(lww_stamp(stamp))
    if state.empty:
        return
    merged = locks.merge_lock(
        conn, manifest.bucket, manifest.key, manifest.version_id, state, lww_stamp(stamp)
    )
    amend_payload(conn, stamp, {"lock": merged.to_json()})


def check_delete(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    bucket: str,
    key: str,
    version_id: str,
    bypass_governance: bool,
) -> None:
    """Refuse (ObjectLocked) to remove a version its lock protects at the stamp's time."""
    state = locks.get_lock(conn, bucket, key, version_id)
    if state and not state.may_delete(stamp.wall_ms, bypass_governance=bypass_governance):
        raise ObjectLocked(f"{bucket}/{key} version {version_id} is protected by object lock")


def refuse_suspend(conn: sqlite3.Connection, bucket: str, status: str) -> None:
    """Versioning cannot be suspended on a bucket with object lock (InvalidBucketState)."""
    if status != "Enabled" and bucket_lock(conn, bucket) is not None:
        raise InvalidBucketState(
            "An Object Lock configuration is present on this bucket, "
            "so the versioning state cannot be changed."
        )


def _locked_version(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> tuple[Manifest, bytes]:
    """The version a retention or hold call applies to, with its manifest bytes."""
    if bucket_lock(conn, bucket) is None:  # NoSuchBucket first, as get_bucket_document checks
        raise LockNotEnabled(bucket)
    if version_id is not None:
        manifest: Manifest | None = catalog.get_version(conn, bucket, key, version_id)
    else:
        manifest = catalog.get_latest(conn, bucket, key)
    if manifest is None or manifest.kind == Kind.TOMBSTONE:
        raise NoSuchKey(key)
    if manifest.kind == Kind.DELETE_MARKER:
        raise LockOnDeleteMarker(f"{bucket}/{key} version {manifest.version_id}")
    return manifest, manifest.encode()


def _log_lock(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    manifest: Manifest,
    raw: bytes,
    change: LockState,
) -> LockState:
    """Merge a lock change in and log it as one ``version.lock`` row (see docs/replication.md).

    Then settle the version: a delete made on another site while this lock forbade it waits
    here (storage/lock_deletes.py); lifting the hold or the retention lets it take effect, as
    it does on every site that applies this change."""
    merged = locks.merge_lock(
        conn, manifest.bucket, manifest.key, manifest.version_id, change, lww_stamp(stamp)
    )
    lock_deletes.settle(conn, manifest.bucket, manifest.key, manifest.version_id, manifest)
    catalog.log_change(
        conn,
        stamp,
        "version.lock",
        manifest.bucket,
        manifest=manifest,
        manifest_bytes=raw,
        payload={"lock": merged.to_json()},
    )
    return merged


def retention_change(
    state: LockState,
    now_ms: int,
    stamp: Timestamp,
    mode: Mode | None,
    until_ms: int | None,
    bypass_governance: bool,
) -> LockState:
    """The change a PutObjectRetention asks for, or ObjectLocked if S3's rules refuse it."""
    compliance = state.compliance_until_ms or 0
    governance = state.governance_until_ms or 0
    if compliance > now_ms and (mode != "COMPLIANCE" or until_ms is None or until_ms < compliance):
        raise ObjectLocked("a COMPLIANCE retention can only be extended")
    # Shortening, removing or switching a GOVERNANCE retention in force to COMPLIANCE all
    # alter it in a way only the bypass may (as AWS and the s3-tests suite answer).
    altered = until_ms is None or until_ms < governance or mode == "COMPLIANCE"
    if governance > now_ms and altered and not bypass_governance:
        raise ObjectLocked("altering a GOVERNANCE retention needs the bypass permission")
    if mode == "COMPLIANCE":
        change = LockState(compliance_until_ms=until_ms)
        if state.governance is not None:
            change = change.with_governance(lww_stamp(stamp), None)  # now shown as COMPLIANCE
        return change
    return LockState(governance=(lww_stamp(stamp), until_ms))


@dataclass(frozen=True)
class PutRetention:
    """PutObjectRetention: ``mode`` and ``until_ms`` both None removes the retention."""

    bucket: str
    key: str
    version_id: str | None
    mode: Mode | None
    until_ms: int | None
    bypass_governance: bool = False

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[str]:
        manifest, raw = _locked_version(conn, self.bucket, self.key, self.version_id)
        state = locks.get_lock(conn, self.bucket, self.key, manifest.version_id) or LockState()
        change = retention_change(
            state, stamp.wall_ms, stamp, self.mode, self.until_ms, self.bypass_governance
        )
        _log_lock(conn, stamp, manifest, raw, change)
        return Outcome(manifest.version_id)


@dataclass(frozen=True)
class PutLegalHold:
    bucket: str
    key: str
    version_id: str | None
    on: bool

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[str]:
        manifest, raw = _locked_version(conn, self.bucket, self.key, self.version_id)
        state = locks.get_lock(conn, self.bucket, self.key, manifest.version_id) or LockState()
        change = state.with_hold(lww_stamp(stamp)) if self.on else state.without_hold()
        _log_lock(conn, stamp, manifest, raw, change)
        return Outcome(manifest.version_id)


def get_version_lock(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> tuple[str, LockState | None]:
    """GetObjectRetention / GetObjectLegalHold: the version's id and its lock state."""
    manifest, _raw = _locked_version(conn, bucket, key, version_id)
    return manifest.version_id, locks.get_lock(conn, bucket, key, manifest.version_id)


@dataclass(frozen=True)
class CreateLockedBucket:
    """CreateBucket with object lock: the bucket, versioning Enabled and the lock document,
    in one transaction (three change rows, stamped one after the other)."""

    name: str
    owner: str

    def touched(self) -> tuple[str, str | None]:
        return self.name, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[BucketInfo]:
        info = catalog.apply_create_bucket(conn, stamp, self.name, self.owner)
        versioning = next_stamp(stamp)
        catalog.apply_set_versioning(conn, versioning, self.name, "Enabled")
        document = next_stamp(versioning)
        bucket_config.PutBucketDocument(self.name, LOCK_DOCUMENT, BucketLock().dumps()).apply(
            conn, document
        )
        return Outcome(
            BucketInfo(info.name, info.owner, info.created_ms, "Enabled"),
            last_stamp=document.pack(),
        )


@dataclass(frozen=True)
class PutLockConfiguration:
    """PutObjectLockConfiguration: enable object lock (on a versioned bucket) or change its
    default retention. Once enabled it stays enabled, as on AWS."""

    bucket: str
    config: BucketLock

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        if catalog.get_bucket(conn, self.bucket).versioning != "Enabled":
            raise InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            )
        document = bucket_config.PutBucketDocument(self.bucket, LOCK_DOCUMENT, self.config.dumps())
        return document.apply(conn, stamp)
