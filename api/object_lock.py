"""Object lock on the S3 surface: the lock calls, the ``x-amz-object-lock-*`` headers, bypass.

Get/PutObjectLockConfiguration (``?object-lock``), Get/PutObjectRetention (``?retention``),
Get/PutObjectLegalHold (``?legal-hold``); the lock settings PutObject, CopyObject and
CreateMultipartUpload carry, and the lock headers HEAD/GET answer. Parsing and validation are
pure functions here; what may change a lock is decided inside the commit
(storage/lock_mutations.py), so a check here never stands alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from starlette.responses import Response

from api import xml
from api.access import authorize
from api.body import read_small_body
from api.context import S3Context
from api.errors import S3Error
from api.sigv4 import is_sha256_hex
from storage.catalog import NULL_VERSION
from storage.errors import NoSuchConfiguration
from storage.lock_mutations import BucketLock, LockRequest
from storage.lock_state import MODES, LockState, Mode

MODE_HEADER: Final = "x-amz-object-lock-mode"
UNTIL_HEADER: Final = "x-amz-object-lock-retain-until-date"
HOLD_HEADER: Final = "x-amz-object-lock-legal-hold"
BYPASS_HEADER: Final = "x-amz-bypass-governance-retention"
BYPASS_ACTION: Final = "s3:BypassGovernanceRetention"
LOCK_BODY_BYTES_MAX: Final = 64 * 1024
RETENTION_DAYS_MAX: Final = 36_500  # AWS: at most 100 years
MISSING_LOCK: Final = "Bucket is missing Object Lock Configuration"


def _malformed() -> S3Error:
    return xml.malformed_xml()


def parse_until(text: str) -> int:
    """An ISO 8601 retain-until date (``2030-01-01T00:00:00Z``, fractions allowed) in ms."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise S3Error(
            "InvalidArgument", "The retain until date must be provided in ISO 8601 format"
        ) from None
    if parsed.tzinfo is None:
        raise S3Error(
            "InvalidArgument", "The retain until date must be provided in ISO 8601 format"
        )
    return round(parsed.timestamp() * 1000)


def _future(until_ms: int, now_ms: int) -> int:
    if until_ms <= now_ms:
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    return until_ms


def parse_lock_headers(headers: Mapping[str, str], now_ms: int) -> LockRequest | None:
    """The lock settings a write carries (None: none); AWS's InvalidArgument otherwise."""
    mode = headers.get(MODE_HEADER)
    until = headers.get(UNTIL_HEADER)
    hold = headers.get(HOLD_HEADER)
    if mode is None and until is None and hold is None:
        return None
    if (mode is None) != (until is None):
        raise S3Error(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )
    if mode is not None and mode not in MODES:
        raise S3Error("InvalidArgument", "Unknown wormMode directive.")
    if hold is not None and hold not in ("ON", "OFF"):
        raise S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'")
    until_ms = None if until is None else _future(parse_until(until), now_ms)
    return LockRequest(mode, until_ms, hold == "ON")  # type: ignore[arg-type]


def has_integrity_check(headers: Mapping[str, str]) -> bool:
    """Content-MD5 or an x-amz-checksum-* value (in a header or announced as a trailer), or a
    signed payload SHA-256: minio-py over plain HTTP sends that instead of Content-MD5, and
    the body pipeline verifies it before anything commits (MinIO accepts it too)."""
    if "content-md5" in headers or headers.get("x-amz-sdk-checksum-algorithm"):
        return True
    if is_sha256_hex(headers.get("x-amz-content-sha256", "")):
        return True
    if headers.get("x-amz-trailer", "").lower().startswith("x-amz-checksum-"):
        return True
    return any(
        name.lower().startswith("x-amz-checksum-") and name.lower() not in _NOT_A_CHECKSUM
        for name in headers
    )


_NOT_A_CHECKSUM = frozenset(
    ("x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode")
)


def _require_integrity(headers: Mapping[str, str], what: str) -> None:
    if not has_integrity_check(headers):
        raise S3Error(
            "InvalidRequest",
            f"Content-MD5 OR x-amz-checksum- HTTP header is required for {what} requests "
            "with Object Lock parameters",
        )


async def write_lock(ctx: S3Context, *, body: bool = True) -> LockRequest | None:
    """The lock settings of a PutObject/CopyObject/CreateMultipartUpload, checked as AWS does
    (the commit checks the bucket again). ``body``: the request uploads data (integrity)."""
    request = parse_lock_headers(ctx.headers, ctx.store.time_source.wall_ms())
    if request is None:
        return None
    if not await ctx.store.object_locks.enabled(ctx.bucket_name):
        raise S3Error("InvalidRequest", MISSING_LOCK)
    if body:
        _require_integrity(ctx.headers, "Put Object")
    return request


def lock_headers(state: LockState | None) -> dict[str, str]:
    """What HEAD/GET say of a version's lock (nothing when it never had one)."""
    if state is None:
        return {}
    headers: dict[str, str] = {}
    retention = state.retention()
    if retention is not None:
        headers[MODE_HEADER] = retention.mode
        headers[UNTIL_HEADER] = xml.iso8601_ms(retention.until_ms)
    if state.hold_set:
        headers[HOLD_HEADER] = "ON" if state.legal_hold else "OFF"
    return headers


async def version_lock_headers(
    ctx: S3Context, bucket: str, key: str, version_id: str
) -> dict[str, str]:
    return lock_headers(await ctx.store.object_locks.state(bucket, key, version_id))


async def bypass_governance(ctx: S3Context, key: str | None = None) -> bool:
    """``x-amz-bypass-governance-retention: true``, for a key allowed the bypass (else
    AccessDenied); the root key is, as an AWS account root is."""
    if ctx.headers.get(BYPASS_HEADER, "").strip().lower() != "true":
        return False
    await authorize(ctx, BYPASS_ACTION, ctx.bucket_name, key if key is not None else ctx.key)
    return True


# ---- bucket configuration ----------------------------------------------------------------------


def parse_lock_configuration(body: bytes) -> BucketLock:
    """An ObjectLockConfiguration document (MalformedXML / InvalidArgument as AWS answers)."""
    root = xml.parse(body)
    if xml.local_name(root) != "ObjectLockConfiguration":
        raise _malformed()
    if (xml.child_text(root, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise _malformed()
    rules = xml.children_named(root, "Rule")
    if not rules:
        return BucketLock()
    retentions = xml.children_named(rules[0], "DefaultRetention")
    if len(rules) > 1 or len(retentions) != 1:
        raise _malformed()
    retention = retentions[0]
    mode = (xml.child_text(retention, "Mode") or "").strip()
    days, years = xml.child_text(retention, "Days"), xml.child_text(retention, "Years")
    if mode not in MODES or (days is None) == (years is None):
        raise _malformed()
    period = _period(days if days is not None else years)
    if (period if days is not None else period * 365) > RETENTION_DAYS_MAX:
        raise S3Error("InvalidArgument", "Default retention period is too large.")
    if days is not None:
        return BucketLock(mode, days=period)  # type: ignore[arg-type]
    return BucketLock(mode, years=period)  # type: ignore[arg-type]


def _period(text: str | None) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        raise _malformed() from None
    if value <= 0:
        raise S3Error(
            "InvalidArgument", "Default retention period must be a positive integer value."
        )
    return value


def render_lock_configuration(config: BucketLock) -> bytes:
    children: list[xml.Node] = [("ObjectLockEnabled", "Enabled")]
    if config.mode is not None:
        period: xml.Node = (
            ("Days", config.days) if config.days is not None else ("Years", config.years)
        )
        children.append(("Rule", [("DefaultRetention", [("Mode", config.mode), period])]))
    return xml.render("ObjectLockConfiguration", children)


async def put_object_lock_configuration(ctx: S3Context) -> Response:
    _require_integrity(ctx.headers, "PutObjectLockConfiguration")
    body = await read_small_body(ctx.request, ctx.auth, LOCK_BODY_BYTES_MAX)
    config = parse_lock_configuration(body)
    await ctx.store.object_locks.put_configuration(ctx.bucket_name, config)
    return Response(status_code=200)


async def get_object_lock_configuration(ctx: S3Context) -> Response:
    try:
        config = await ctx.store.object_locks.configuration(ctx.bucket_name)
    except NoSuchConfiguration:
        raise S3Error(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
            resource=ctx.resource,
        ) from None
    return Response(render_lock_configuration(config), media_type="application/xml")


# ---- retention and legal hold ------------------------------------------------------------------


def parse_retention(body: bytes, now_ms: int) -> tuple[Mode | None, int | None]:
    """A Retention document: (mode, until) or (None, None) to remove the retention."""
    root = xml.parse(body)
    if xml.local_name(root) != "Retention":
        raise _malformed()
    mode = xml.child_text(root, "Mode")
    until = xml.child_text(root, "RetainUntilDate")
    if mode is None and until is None:
        return None, None
    if mode is None or until is None or mode.strip() not in MODES:
        raise _malformed()
    return mode.strip(), _future(parse_until(until), now_ms)  # type: ignore[return-value]


def parse_legal_hold(body: bytes) -> bool:
    root = xml.parse(body)
    status = xml.child_text(root, "Status")
    if xml.local_name(root) != "LegalHold" or status is None or status.strip() not in ("ON", "OFF"):
        raise _malformed()
    return status.strip() == "ON"


def _no_lock(ctx: S3Context) -> S3Error:
    return S3Error(
        "NoSuchObjectLockConfiguration",
        "The specified object does not have a ObjectLock configuration",
        resource=ctx.resource,
    )


def _version_header(version_id: str) -> dict[str, str]:
    return {} if version_id == NULL_VERSION else {"x-amz-version-id": version_id}


async def _read_lock_body(ctx: S3Context, what: str) -> bytes:
    _require_integrity(ctx.headers, what)
    return await read_small_body(ctx.request, ctx.auth, LOCK_BODY_BYTES_MAX)


async def put_object_retention(ctx: S3Context) -> Response:
    body = await _read_lock_body(ctx, "PutObjectRetention")
    mode, until_ms = parse_retention(body, ctx.store.time_source.wall_ms())
    bypass = await bypass_governance(ctx)
    await ctx.store.object_locks.put_retention(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId"), mode, until_ms, bypass
    )
    return Response(status_code=200)


async def get_object_retention(ctx: S3Context) -> Response:
    _version, state = await ctx.store.object_locks.version_lock(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId")
    )
    retention = None if state is None else state.retention()
    if retention is None:
        raise _no_lock(ctx)
    document = xml.render(
        "Retention",
        [("Mode", retention.mode), ("RetainUntilDate", xml.iso8601_ms(retention.until_ms))],
    )
    return Response(document, media_type="application/xml")


async def put_object_legal_hold(ctx: S3Context) -> Response:
    on = parse_legal_hold(await _read_lock_body(ctx, "PutObjectLegalHold"))
    await ctx.store.object_locks.put_legal_hold(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId"), on
    )
    return Response(status_code=200)


async def get_object_legal_hold(ctx: S3Context) -> Response:
    _version, state = await ctx.store.object_locks.version_lock(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId")
    )
    if state is None or not state.hold_set:
        raise _no_lock(ctx)
    status = "ON" if state.legal_hold else "OFF"
    return Response(xml.render("LegalHold", [("Status", status)]), media_type="application/xml")
