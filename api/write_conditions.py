"""Conditional writes: If-None-Match / If-Match on PutObject, CopyObject (the destination),
CompleteMultipartUpload, and If-Match on DeleteObject.

The headers become a storage :class:`WriteCondition`, observed against the key's state
when the request starts: a condition that already fails is refused before any body is read
(412 PreconditionFailed, or 404 NoSuchKey for If-Match on a key with no current object, as
AWS answers). The authoritative check runs inside the commit transaction (storage/conditions.py),
where a write that committed meanwhile makes it 409 ConditionalRequestConflict.
"""

from __future__ import annotations

from api.context import S3Context
from api.errors import S3Error
from storage.conditions import ANY_ETAG, WriteCondition


def etag_value(raw: str) -> str:
    """An ETag as clients send it, quoted or not, compared strongly (a weak W/ tag never
    matches a write condition, as RFC 9110 requires for If-Match)."""
    value = raw.strip()
    if value == ANY_ETAG:
        return ANY_ETAG
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value[1:-1]
    return value


def parse_write_condition(
    ctx: S3Context, *, allow_if_none_match: bool = True
) -> WriteCondition | None:
    """The request's write condition, or None when it has none.

    If-None-Match on a write takes only ``*``, and not together with If-Match: AWS answers
    NotImplemented to both. DeleteObject takes If-Match only (If-None-Match is ignored there).
    """
    if_none_match = ctx.headers.get("if-none-match") if allow_if_none_match else None
    if_match = ctx.headers.get("if-match")
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and (if_none_match.strip() != ANY_ETAG or if_match is not None):
        raise S3Error(
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
            resource=ctx.resource,
        )
    return WriteCondition(
        if_none_match_any=if_none_match is not None,
        if_match_etag=None if if_match is None else etag_value(if_match),
    )


async def observe_write_condition(
    ctx: S3Context, *, allow_if_none_match: bool = True
) -> WriteCondition | None:
    """The request's write condition, recorded against the destination key's current
    state and refused now if it already fails there (before any body is read)."""
    condition = parse_write_condition(ctx, allow_if_none_match=allow_if_none_match)
    if condition is None:
        return None
    return await ctx.store.observe_condition(ctx.bucket_name, ctx.object_key, condition)
