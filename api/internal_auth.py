"""Who may call the node's internal replication endpoints (``/_lakenode/repl/``).

Replication traffic is signed with SigV4 like S3 requests (header or presigned form), by the
root key or by a key created with ``lakenode keys create --replication``. Ordinary keys, even
unrestricted ones, are refused: reading the change log and raw chunks bypasses every bucket
policy, so the permission is separate and explicit.

This lives in api/ because only api/ verifies signatures; replication/ cannot import api/
(nor api/ replication/), so failures are raised as ``fastapi.HTTPException``, which the
replication routes turn into their JSON errors.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import HTTPException, Request

from api.errors import S3Error
from api.keyring import KeyRing
from api.settings import ApiSettings
from api.sigv4 import (
    AuthContext,
    SignableRequest,
    is_sha256_hex,
    signable_headers,
    verify,
)
from api.sigv4_canonical import UNSIGNED_PAYLOAD

# Bodies whose SHA-256 is signed are hashed here, so they are read here: bounded.
DEFAULT_MAX_BODY_BYTES: Final = 64 << 20

Authorizer = Callable[[Request], Awaitable[None]]


def replication_authorizer(
    settings: ApiSettings, keyring: KeyRing, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Authorizer:
    """An ``authorize(request)`` that returns for allowed requests and raises HTTPException."""

    async def authorize(request: Request) -> None:
        if not settings.auth_enabled:
            return  # --auth off: everyone acts as the root key, as for S3
        auth = _verified(request, settings, keyring)
        _check_permission(auth.access_key, keyring)
        await _check_payload(request, auth, max_body_bytes)

    return authorize


def _verified(request: Request, settings: ApiSettings, keyring: KeyRing) -> AuthContext:
    signable = SignableRequest(
        method=request.method,
        path=request.scope["path"],
        query_string=request.scope.get("query_string", b"").decode("latin-1"),
        headers=signable_headers(request.scope["headers"]),
    )
    try:
        auth = verify(signable, keyring.secret_for, settings.region)
    except S3Error as exc:
        raise _denied(exc, status=400 if exc.status == 400 else 403) from exc
    if auth is None:
        raise HTTPException(403, "replication requires a signed request")
    return auth


def _check_permission(access_key: str, keyring: KeyRing) -> None:
    try:
        identity = keyring.identity(access_key)
    except S3Error as exc:  # removed or disabled since its signature was checked
        raise _denied(exc, status=403) from exc
    if identity.root or (identity.key is not None and identity.key.replication):
        return
    raise HTTPException(403, f"access key {access_key} may not use the replication endpoints")


async def _check_payload(request: Request, auth: AuthContext, limit: int) -> None:
    """Check a signed body's SHA-256 (the signature covers only its stated hash)."""
    if auth.payload_hash == UNSIGNED_PAYLOAD:
        return
    if not is_sha256_hex(auth.payload_hash):
        raise HTTPException(400, "streaming payloads are not accepted by replication endpoints")
    declared = request.headers.get("content-length")
    if declared is None:
        if "transfer-encoding" in request.headers:
            raise HTTPException(411, "a signed replication body needs a Content-Length")
        declared = "0"
    if not declared.isdigit() or int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    # Bounded by Content-Length; Starlette keeps the body for the route to read again.
    body = await request.body()
    digest = hashlib.sha256(body).hexdigest()
    if not hmac.compare_digest(digest, auth.payload_hash.lower()):
        raise HTTPException(400, "XAmzContentSHA256Mismatch: the body does not match its hash")


def _denied(exc: S3Error, status: int) -> HTTPException:
    return HTTPException(status, f"{exc.code}: {exc.message}")
