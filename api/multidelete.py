"""DeleteObjects: the multi-object delete (POST /bucket?delete).

An Object may carry an ETag: that delete is conditional, as DeleteObject with If-Match (the
key's current object must have it, decided inside the commit; PreconditionFailed otherwise).
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.responses import Response

from api import xml
from api.access import action_for, authorize
from api.body import Body, content_md5
from api.context import S3Context
from api.errors import S3Error, from_storage_error
from api.object_lock import bypass_governance
from api.upload import KEY_BYTES_MAX
from api.write_conditions import etag_value
from storage.conditions import WriteCondition
from storage.errors import StorageError
from storage.mutations import DeleteResult

KEYS_PER_REQUEST_MAX = 1000
BODY_BYTES_MAX = 2 * 1024 * 1024


# (key, version id, ETag the current object must have)
ObjectToDelete = tuple[str, str | None, str | None]


def _parse(body: bytes) -> tuple[bool, list[ObjectToDelete]]:
    root = xml.parse(body)
    if xml.local_name(root) != "Delete":
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not "
            "validate against our published schema",
        )
    quiet = (xml.child_text(root, "Quiet") or "").strip().lower() == "true"
    objects = []
    for element in xml.children_named(root, "Object"):
        key = xml.child_text(element, "Key")
        if key is None:
            raise S3Error("MalformedXML", "Each Object needs a Key.")
        etag = xml.child_text(element, "ETag")
        objects.append((key, xml.child_text(element, "VersionId"), etag))
    if not objects or len(objects) > KEYS_PER_REQUEST_MAX:
        raise S3Error("MalformedXML", f"Provide between 1 and {KEYS_PER_REQUEST_MAX} keys.")
    return quiet, objects


async def delete_objects(ctx: S3Context) -> Response:
    expected_md5 = content_md5(ctx.headers)
    body_reader = Body(ctx.request, ctx.auth)
    body = await body_reader.read_all(BODY_BYTES_MAX)
    if expected_md5 is not None and hashlib.md5(body).digest() != expected_md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    quiet, objects = _parse(body)
    await ctx.store.get_bucket(ctx.bucket_name)
    # Submitted together, the deletes share one group commit.
    results = await asyncio.gather(
        *(_delete_one(ctx, key, version_id, etag) for key, version_id, etag in objects)
    )
    nodes: list[xml.Node] = []
    for (key, version_id, _etag), outcome in zip(objects, results, strict=True):
        if isinstance(outcome, S3Error):
            nodes.append(
                (
                    "Error",
                    [
                        ("Key", key),
                        ("VersionId", version_id),
                        ("Code", outcome.code),
                        ("Message", outcome.message),
                    ],
                )
            )
        elif not quiet:
            nodes.append(("Deleted", _deleted_fields(key, version_id, outcome)))
    return Response(xml.render("DeleteResult", nodes), media_type="application/xml")


def _deleted_fields(key: str, version_id: str | None, result: DeleteResult) -> list[xml.Node]:
    fields: list[xml.Node] = [("Key", key), ("VersionId", version_id)]
    if result.delete_marker:
        # The marker created, or (delete by version id) the marker removed, as AWS answers.
        fields.append(("DeleteMarker", True))
        fields.append(("DeleteMarkerVersionId", result.version_id))
    return fields


async def _delete_one(
    ctx: S3Context, key: str, version_id: str | None, etag: str | None
) -> DeleteResult | S3Error:
    if len(key.encode()) > KEY_BYTES_MAX:
        return S3Error("KeyTooLongError", "Your key is too long")
    query = {"versionId": version_id} if version_id is not None else {}
    try:
        await authorize(ctx, action_for("DeleteObject", query), ctx.bucket_name, key)
    except S3Error as denied:
        return denied
    try:
        bypass = await bypass_governance(ctx, key) if version_id is not None else False
    except S3Error as denied:
        return denied
    try:
        condition = None if etag is None else WriteCondition(if_match_etag=etag_value(etag))
        return await ctx.store.delete_object(ctx.bucket_name, key, version_id, condition, bypass)
    except StorageError as exc:
        return from_storage_error(exc, f"/{ctx.bucket_name}/{key}")
