"""Get/Put/DeleteBucketLifecycleConfiguration (``?lifecycle``) and ``x-amz-expiration``.

The document is validated by api/lifecycle_xml.py and stored as the JSON of the rules
(storage/lifecycle.py), the ``lifecycle`` bucket document, which replicates like the other
bucket documents; the lifecycle worker inside ``lakenode serve`` applies it. HEAD and GET
answer ``x-amz-expiration`` for a current version a rule will expire; the rules are read once
per bucket per second (api/document_cache.py), so that costs a dict lookup on most requests.
"""

from __future__ import annotations

import email.utils
import logging
import string
import urllib.parse

from starlette.responses import Response

from api.body import checksum_fields, read_small_body
from api.context import S3Context
from api.document_cache import DocumentCache, PerStore
from api.errors import S3Error
from api.lifecycle_xml import parse_lifecycle, render_lifecycle
from storage import lifecycle
from storage.errors import NoSuchConfiguration
from storage.lifecycle import BadLifecycle, Lifecycle
from storage.manifest import Kind, Manifest

log = logging.getLogger("lakenode.api")

DOCUMENT = "lifecycle"
BODY_BYTES_MAX = 1024 * 1024
# AWS answers Put/GetBucketLifecycleConfiguration with the transition default (boto3 reads it
# as TransitionDefaultMinimumObjectSize); with no transitions there is nothing to vary.
TRANSITION_DEFAULT = {"x-amz-transition-default-minimum-object-size": "all_storage_classes_128K"}
# Printable ASCII but the quote and the backslash: a rule ID is shown as is, anything else
# (non-ASCII, control characters) percent-encoded, so the header stays valid.
_RULE_ID_SAFE = "".join(c for c in string.printable if c not in '"\\%' and not c.isspace()) + " "


def _require_integrity_header(ctx: S3Context) -> None:
    """AWS requires Content-MD5 or an x-amz-checksum-* value (header or trailer) here."""
    if "content-md5" in ctx.headers:
        return
    if any(name.startswith("x-amz-checksum-") for name in checksum_fields(ctx.request)):
        return
    if "x-amz-checksum-" in ctx.headers.get("x-amz-trailer", "").lower():
        return
    raise S3Error(
        "InvalidRequest",
        "Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header)",
    )


async def put_bucket_lifecycle(ctx: S3Context) -> Response:
    _require_integrity_header(ctx)
    document = parse_lifecycle(await read_small_body(ctx.request, ctx.auth, BODY_BYTES_MAX))
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, document.dumps())
    cache_for(ctx.store).invalidate(ctx.bucket_name)
    return Response(status_code=200, headers=TRANSITION_DEFAULT)


def _no_configuration(ctx: S3Context) -> S3Error:
    return S3Error(
        "NoSuchLifecycleConfiguration",
        "The lifecycle configuration does not exist",
        ctx.resource,
    )


async def get_bucket_lifecycle(ctx: S3Context) -> Response:
    try:
        stored = await ctx.store.get_bucket_document(ctx.bucket_name, DOCUMENT)
        rules = lifecycle.loads(stored)
    except NoSuchConfiguration as exc:
        raise _no_configuration(ctx) from exc
    except BadLifecycle as exc:
        log.warning("bucket %s: stored lifecycle configuration is invalid: %s", ctx.bucket, exc)
        raise _no_configuration(ctx) from exc
    return Response(
        render_lifecycle(rules), media_type="application/xml", headers=TRANSITION_DEFAULT
    )


async def delete_bucket_lifecycle(ctx: S3Context) -> Response:
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, None)
    cache_for(ctx.store).invalidate(ctx.bucket_name)
    return Response(status_code=204)


# ---- x-amz-expiration -------------------------------------------------------------------------


def _rules_of(document: str) -> Lifecycle | None:
    return lifecycle.loads(document)


cache_for: PerStore[Lifecycle | None] = PerStore(
    lambda store: DocumentCache(store, DOCUMENT, _rules_of, None, (BadLifecycle,))
)


async def expiration_header(ctx: S3Context, manifest: Manifest, is_current: bool) -> dict[str, str]:
    """``x-amz-expiration`` for a current object version some enabled rule will expire."""
    if not is_current or manifest.kind != Kind.OBJECT:
        return {}
    rules = await cache_for(ctx.store).get(manifest.bucket)
    if rules is None or not rules.enabled:
        return {}
    tags: lifecycle.Tags = ()
    if any(rule.filter.tags for rule in rules.enabled):
        _version, tags = await ctx.store.get_tags(
            manifest.bucket, manifest.key, manifest.version_id
        )
    expiry = lifecycle.current_expiry(
        rules,
        manifest.key,
        manifest.size,
        tags,
        manifest.last_modified_ms,
        ctx.settings.lifecycle_day_ms,
    )
    if expiry is None:
        return {}
    date = email.utils.formatdate(expiry.at_ms / 1000, usegmt=True)
    rule_id = urllib.parse.quote(expiry.rule_id, safe=_RULE_ID_SAFE)
    return {"x-amz-expiration": f'expiry-date="{date}", rule-id="{rule_id}"'}
