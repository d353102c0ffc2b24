"""The S3 HTTP surface: one catch-all route -> authenticate -> resolve -> dispatch.

Errors are turned into responses in exactly one place, :func:`error_response`: an S3Error
becomes its XML document, a storage error is translated by api/errors.py, and anything else
is logged with its traceback and the request id and answered as InternalError.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import (
    acl_handlers,
    attributes,
    bucket_policy,
    buckets,
    cors,
    lifecycle,
    listing,
    multidelete,
    multipart,
    object_lock,
    objects,
    ownership,
    post_object,
    public_access,
    sigv2,
    tagging,
)
from api.access import BucketAccessCache, action_for, authorize, check_expected_owner
from api.context import ReplicationStatus, S3Context, no_replication_status
from api.errors import S3Error, from_storage_error, render_error_xml
from api.header_limits import check_header_section
from api.keyring import ANONYMOUS, Identity, KeyRing
from api.observe import UNKNOWN_OPERATION, NoObserver, RequestObserver
from api.router import PREFLIGHT, resolve, split_target, virtual_host_bucket
from api.settings import ApiSettings
from api.sigv4 import AuthContext, SignableRequest, signable_headers, verify
from api.write_gate import WRITE_METHODS, WriteGate
from storage.errors import StorageError
from storage.store import Store

log = logging.getLogger("lakenode.api")

Handler = Callable[[S3Context], Awaitable[Response]]
HANDLERS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "HeadBucket": buckets.head_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "GetBucketVersioning": buckets.get_bucket_versioning,
    "ListObjects": listing.list_objects_v1,
    "ListObjectsV2": listing.list_objects_v2,
    "DeleteObjects": multidelete.delete_objects,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "DeleteObject": objects.delete_object,
    "CopyObject": objects.copy_object,
    "PutBucketVersioning": buckets.put_bucket_versioning,
    "ListObjectVersions": listing.list_object_versions,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "GetBucketPolicy": bucket_policy.get_bucket_policy,
    "PutBucketPolicy": bucket_policy.put_bucket_policy,
    "DeleteBucketPolicy": bucket_policy.delete_bucket_policy,
    "GetBucketAcl": acl_handlers.get_bucket_acl,
    "PutBucketAcl": acl_handlers.put_bucket_acl,
    "GetObjectAcl": acl_handlers.get_object_acl,
    "PutObjectAcl": acl_handlers.put_object_acl,
    "GetBucketOwnershipControls": ownership.get_bucket_ownership_controls,
    "PutBucketOwnershipControls": ownership.put_bucket_ownership_controls,
    "DeleteBucketOwnershipControls": ownership.delete_bucket_ownership_controls,
    "GetPublicAccessBlock": public_access.get_public_access_block,
    "PutPublicAccessBlock": public_access.put_public_access_block,
    "DeletePublicAccessBlock": public_access.delete_public_access_block,
    "GetBucketPolicyStatus": bucket_policy.get_bucket_policy_status,
    "GetObjectTagging": tagging.get_object_tagging,
    "PutObjectTagging": tagging.put_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
    "GetBucketTagging": tagging.get_bucket_tagging,
    "PutBucketTagging": tagging.put_bucket_tagging,
    "DeleteBucketTagging": tagging.delete_bucket_tagging,
    "GetBucketCors": cors.get_bucket_cors,
    "PutBucketCors": cors.put_bucket_cors,
    "DeleteBucketCors": cors.delete_bucket_cors,
    "GetObjectAttributes": attributes.get_object_attributes,
    "PostObject": post_object.post_object,
    "GetBucketLifecycleConfiguration": lifecycle.get_bucket_lifecycle,
    "PutBucketLifecycleConfiguration": lifecycle.put_bucket_lifecycle,
    "DeleteBucketLifecycle": lifecycle.delete_bucket_lifecycle,
    "GetObjectLockConfiguration": object_lock.get_object_lock_configuration,
    "PutObjectLockConfiguration": object_lock.put_object_lock_configuration,
    "GetObjectRetention": object_lock.get_object_retention,
    "PutObjectRetention": object_lock.put_object_retention,
    "GetObjectLegalHold": object_lock.get_object_legal_hold,
    "PutObjectLegalHold": object_lock.put_object_legal_hold,
}
RESERVED_PREFIX = "/_lakenode/"


_REQUEST_ID_PREFIX = secrets.token_hex(3).upper()  # distinguishes restarts and nodes
_request_numbers = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits, unique per process: a random prefix plus a counter (no syscall)."""
    return f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFFFF:010X}"


class S3Dispatcher:
    """ASGI entry point: S3 requests go straight to the S3 handler, the rest to ``internal``.

    S3 traffic bypasses FastAPI's router and middleware stack, which cost more per request
    than everything the S3 handler does for a small GET; FastAPI keeps serving the node's
    own endpoints under /_lakenode/.

    Every S3 request is reported to ``observer`` (metrics): its operation ("Unknown" when it
    could not be routed), the status sent, the time to the last body byte sent and the body
    bytes each way, counted on the ASGI messages themselves.
    """

    def __init__(
        self,
        internal: ASGIApp,
        settings: ApiSettings,
        runtime: Callable[[], ApiRuntime],
        observer: RequestObserver | None = None,
    ) -> None:
        self.internal = internal
        self.settings = settings
        self.runtime = runtime
        self.observer: RequestObserver = observer or NoObserver()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(RESERVED_PREFIX):
            await self.internal(scope, receive, send)
            return
        observer = self.observer
        observer.started()
        started = time.perf_counter()
        body_started = False
        status = 500  # if nothing is sent at all, the client saw a failure
        bytes_in = bytes_out = 0

        async def tracking_receive() -> Message:
            nonlocal body_started, bytes_in
            body_started = True
            message = await receive()
            bytes_in += len(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, bytes_out
            if message["type"] == "http.response.body":
                bytes_out += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            request = Request(scope, tracking_receive)
            response = await handle_s3_request(request, self.settings, self.runtime())
            if not body_started and "100-continue" in request.headers.get("expect", "").lower():
                # The client holds its body back until "100 Continue", which is only sent when
                # the body is read. Refused before that, keeping the connection would make the
                # server read the client's next request as this one's body.
                response.headers["Connection"] = "close"
            await response(scope, receive, tracking_send)
        finally:
            operation = scope.get("state", {}).get("operation", UNKNOWN_OPERATION)
            elapsed = time.perf_counter() - started
            observer.finished(operation, status, elapsed, bytes_in, bytes_out)


@dataclass(frozen=True)
class ApiRuntime:
    """What the S3 surface needs while the node runs (built by node/ once the store is open)."""

    store: Store
    keyring: KeyRing
    bucket_access: BucketAccessCache
    # x-amz-replication-status of a version, from the configured peers' acknowledgements.
    replication_status: ReplicationStatus = no_replication_status
    # Maintenance mode closes it: mutations get SlowDown, reads go on.
    write_gate: WriteGate = field(default_factory=WriteGate)


async def handle_s3_request(
    request: Request, settings: ApiSettings, runtime: ApiRuntime
) -> Response:
    request_id = new_request_id()
    request.scope.setdefault("state", {})["request_id"] = request_id
    is_head = request.method == "HEAD"
    resource = request.scope["path"]
    if request.method == "OPTIONS":  # a CORS preflight: browsers never sign one
        return await _preflight(request, request_id, settings, runtime.store)
    try:
        check_header_section(request.scope["headers"])
        ctx = await _build_context(request, request_id, settings, runtime)
        resource = ctx.resource
        request.scope["state"]["access_key"] = ctx.identity.access_key
        request.scope["state"]["operation"] = ctx.operation
        await authorize(
            ctx,
            action_for(ctx.operation, ctx.query),
            ctx.bucket,
            ctx.key,
            version_id=ctx.query.get("versionId"),
        )
        await check_expected_owner(ctx)
        with _write_slot(request.method, runtime.write_gate):
            response = await HANDLERS[ctx.operation](ctx)
    except Exception as exc:
        response = error_response(exc, request_id, resource, is_head)
    if "origin" in request.headers:  # a browser's request: CORS headers if a rule admits it
        response.headers.update(await cors.actual_request_headers(request, settings, runtime.store))
    response.headers["x-amz-request-id"] = request_id
    response.headers["x-amz-id-2"] = request_id
    return response


def _write_slot(method: str, gate: WriteGate) -> AbstractContextManager[None]:
    """Mutations hold a slot of the write gate until answered (after their commit)."""
    return gate.s3_write() if method in WRITE_METHODS else nullcontext()


async def _preflight(
    request: Request, request_id: str, settings: ApiSettings, store: Store
) -> Response:
    """OPTIONS, answered from the bucket's CORS rules before (and without) authentication."""
    request.scope["state"]["operation"] = PREFLIGHT
    try:
        response = await cors.preflight(request, settings, store)
    except Exception as exc:
        response = error_response(exc, request_id, request.scope["path"], is_head=False)
    response.headers["x-amz-request-id"] = request_id
    response.headers["x-amz-id-2"] = request_id
    return response


async def _build_context(
    request: Request, request_id: str, settings: ApiSettings, runtime: ApiRuntime
) -> S3Context:
    # scope["path"] is the percent-decoded path; request.url would re-split it at a '?' or '#'
    # that was encoded inside a key.
    path = request.scope["path"]
    target = split_target(path, request.headers.get("host", ""), settings.domain)
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    # Routed before authenticating so that refused requests are counted under their
    # operation too; an unroutable request still gets the authentication error first.
    unroutable: S3Error | None = None
    try:
        operation = resolve(request.method, target, query, "x-amz-copy-source" in request.headers)
        request.scope["state"]["operation"] = operation
    except S3Error as exc:
        unroutable = exc
    if runtime.keyring.behind():  # another worker already serves newer keys
        await runtime.keyring.refresh()
    try:
        auth, identity = _authenticate(request, settings, runtime.keyring)
    except S3Error as exc:
        # A key created moments ago (by `lakenode keys`, or seen by another worker first)
        # may not be loaded yet: read the keys again once, if they changed, and retry.
        if exc.code != "InvalidAccessKeyId" or not await runtime.keyring.refresh():
            raise
        auth, identity = _authenticate(request, settings, runtime.keyring)
    if unroutable is not None:
        raise unroutable
    return S3Context(
        request,
        request_id,
        operation,
        target.bucket,
        target.key,
        query,
        auth,
        settings,
        runtime.store,
        identity,
        runtime.bucket_access,
        runtime.replication_status,
        runtime.keyring,
    )


def _authenticate(
    request: Request, settings: ApiSettings, keyring: KeyRing
) -> tuple[AuthContext | None, Identity]:
    """Verify the signature; return it with the identity acting (anonymous if unsigned)."""
    root = Identity(keyring.root_access_key, root=True)
    try:
        auth = _verify_signature(request, settings, keyring)
    except S3Error:
        if settings.auth_enabled:
            raise
        return None, root  # --auth off: a signature we cannot check is not an error
    if not settings.auth_enabled:
        return auth, root  # --auth off: everyone acts as the root key
    if auth is None:
        return None, ANONYMOUS  # authorization decides (public buckets)
    return auth, keyring.identity(auth.access_key)


def _verify_signature(
    request: Request, settings: ApiSettings, keyring: KeyRing
) -> AuthContext | None:
    """SigV2 or SigV4, whichever the request uses; None when it is not signed at all."""
    headers = signable_headers(request.scope["headers"])
    query_string = request.scope.get("query_string", b"").decode("latin-1")
    if sigv2.applies(headers, query_string):
        if not settings.sigv2_enabled:
            raise sigv2.disabled()
        signable_v2 = sigv2.SigV2Request(
            method=request.method,
            raw_path=request.scope.get("raw_path", b"").decode("utf-8", "surrogateescape")
            or request.scope["path"],
            query_string=query_string,
            headers=headers,
            virtual_bucket=virtual_host_bucket(headers.get("host", ""), settings.domain),
        )
        auth = sigv2.verify(signable_v2, keyring.secret_for)
        if auth.presigned:  # signed headers the URL carries apply as if sent
            hoisted = sigv2.hoisted_headers(query_string, headers).items()
            request.scope["headers"].extend((n.encode(), v.encode()) for n, v in hoisted)
        return auth
    signable = SignableRequest(
        method=request.method,
        path=request.scope["path"],
        query_string=query_string,
        headers=headers,
    )
    return verify(signable, keyring.secret_for, settings.region)


def error_response(exc: Exception, request_id: str, resource: str, is_head: bool) -> Response:
    original = exc
    if isinstance(exc, StorageError):
        exc = from_storage_error(exc, resource)
    if not isinstance(exc, S3Error):
        exc = S3Error("InternalError", "We encountered an internal error. Please try again.")
    if exc.code == "InternalError":
        # The client gets no details; the log gets all of them, under the request id.
        log.error("request %s on %s failed: %s", request_id, resource, original, exc_info=original)
    headers = dict(exc.headers)
    if exc.code in ("SlowDown", "ServiceUnavailable"):
        headers.setdefault("Retry-After", "1")
    if is_head or exc.status == 304:
        if exc.status != 304:
            headers["x-amz-error-code"] = exc.code
        return Response(status_code=exc.status, headers=headers)
    body = render_error_xml(
        exc.code, exc.message, exc.resource or resource, request_id, exc.details
    )
    return Response(body, status_code=exc.status, headers=headers, media_type="application/xml")
