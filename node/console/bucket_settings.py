"""A bucket's settings page: versioning, object lock, lifecycle, CORS, policy and tags.

``GET buckets/{bucket}/settings`` shows them; each form POSTs to ``.../settings/{action}``
and is redirected back (303) when S3 took the change, or gets the page again with S3's error
(code: message, S3's status) next to the form, what was typed still in it. Every read and
change is an S3 request signed as the signed-in key (node/console/settings_s3.py), so S3
decides; the documents sent are made in node/console/settings_xml.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from node.console.s3_self import S3Refused
from node.console.sessions import Session
from node.console.settings_s3 import BucketS3, read_settings
from node.console.settings_xml import (
    LOCK_MODES,
    FormError,
    cors_document,
    lock_document,
    new_rule,
    parse_json,
    versioning_document,
    with_rule,
    without_rule,
)
from node.console.web import FORM_BYTES_MAX, PREFIX, Pages, checked_change, redirect, session_of

# A policy may be 20 KiB (AWS's limit), and a form sends it URL-encoded: up to 3 bytes a
# character. The other forms keep the console's usual cap.
EDITOR_FORM_BYTES_MAX: Final = 128 << 10


def settings_url(bucket: str) -> str:
    return f"{PREFIX}buckets/{quote(bucket, safe='')}/settings"


@dataclass(frozen=True)
class Action:
    """One form of the page: the section it belongs to, and the S3 change it makes."""

    section: str
    run: Callable[[BucketS3, dict[str, str]], Awaitable[None]]
    form_bytes_max: int = FORM_BYTES_MAX
    keeps_input: bool = True  # refused: its form shows again what was typed (not buttons)


async def _versioning(bucket: BucketS3, form: dict[str, str]) -> None:
    await bucket.put_xml("versioning", versioning_document(form.get("status", "")))


async def _object_lock(bucket: BucketS3, form: dict[str, str]) -> None:
    document = lock_document(form.get("mode", ""), form.get("period", ""), form.get("unit", ""))
    await bucket.put_xml("object-lock", document)


async def _add_lifecycle_rule(bucket: BucketS3, form: dict[str, str]) -> None:
    rule = new_rule(form)  # the form is checked before anything is read
    await bucket.put_xml("lifecycle", with_rule(await bucket.lifecycle_root(), rule))


async def _delete_lifecycle_rule(bucket: BucketS3, form: dict[str, str]) -> None:
    current = await bucket.lifecycle_root()
    if current is None:
        raise FormError("The bucket has no lifecycle rules (any more).")
    remaining = without_rule(current, form.get("rule_id", ""))
    if remaining is None:
        await bucket.delete("lifecycle")
    else:
        await bucket.put_xml("lifecycle", remaining)


async def _put_cors(bucket: BucketS3, form: dict[str, str]) -> None:
    await bucket.put_xml("cors", cors_document(form.get("cors", "")))


async def _delete_cors(bucket: BucketS3, form: dict[str, str]) -> None:
    await bucket.delete("cors")


async def _put_policy(bucket: BucketS3, form: dict[str, str]) -> None:
    text = form.get("policy", "")
    parse_json(text, "The policy")  # syntax here; what it says is for S3 to judge
    await bucket.put("policy", text.encode(), "application/json")


async def _delete_policy(bucket: BucketS3, form: dict[str, str]) -> None:
    await bucket.delete("policy")


async def _add_tag(bucket: BucketS3, form: dict[str, str]) -> None:
    key, value = form.get("tag_key", ""), form.get("tag_value", "")
    if not key:
        raise FormError("A tag needs a key.")
    tags = [(old_key, old_value) for old_key, old_value in await bucket.tags() if old_key != key]
    await bucket.put_tags([*tags, (key, value)])  # a key given again takes the new value


async def _remove_tag(bucket: BucketS3, form: dict[str, str]) -> None:
    key = form.get("tag_key", "")
    tags = await bucket.tags()
    kept = [(old_key, value) for old_key, value in tags if old_key != key]
    if len(kept) == len(tags):
        raise FormError(f"The bucket has no tag {key!r} (any more).")
    await bucket.put_tags(kept)


ACTIONS: Final = {
    "versioning": Action("versioning", _versioning, keeps_input=False),
    "object-lock": Action("object-lock", _object_lock),
    "lifecycle": Action("lifecycle", _add_lifecycle_rule),
    "lifecycle-delete": Action("lifecycle", _delete_lifecycle_rule, keeps_input=False),
    "cors": Action("cors", _put_cors, EDITOR_FORM_BYTES_MAX),
    "cors-delete": Action("cors", _delete_cors, keeps_input=False),
    "policy": Action("policy", _put_policy, EDITOR_FORM_BYTES_MAX),
    "policy-delete": Action("policy", _delete_policy, keeps_input=False),
    "tags-add": Action("tags", _add_tag),
    "tags-remove": Action("tags", _remove_tag, keeps_input=False),
}


@dataclass(frozen=True)
class Refusal:
    """A change S3 (or the form check) refused: shown in its section, with what was typed."""

    action: Action
    message: str
    status: int
    form: dict[str, str]

    @property
    def drafts(self) -> dict[str, str]:
        return self.form if self.action.keeps_input else {}


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX + "buckets/{bucket}/settings")
    async def settings_page(bucket: str, request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        return await _settings_page(pages, session, bucket, None)

    @router.post(PREFIX + "buckets/{bucket}/settings/{name}")
    async def settings_change(bucket: str, name: str, request: Request) -> Response:
        action = ACTIONS.get(name)
        if action is None:
            return pages.forbidden(f"There is no setting {name!r}.", 404)
        change = await checked_change(request, pages, action.form_bytes_max)
        if isinstance(change, Response):
            return change
        try:
            await action.run(BucketS3(ctx.s3_as(change.session), bucket), change.form)
        except S3Refused as refused:
            failed = Refusal(action, str(refused), refused.status, change.form)
            return await _settings_page(pages, change.session, bucket, failed)
        except FormError as wrong:
            failed = Refusal(action, str(wrong), 400, change.form)
            return await _settings_page(pages, change.session, bucket, failed)
        return redirect(f"{settings_url(bucket)}#{action.section}")

    return router


async def _settings_page(
    pages: Pages, session: Session, bucket: str, refusal: Refusal | None
) -> Response:
    """The page as S3 answers now; a refused change's message sits in its section, and its
    form keeps what was typed (``drafts``)."""
    values = {
        "title": f"Settings of {bucket}",
        "bucket": bucket,
        "base": settings_url(bucket),
        "buckets_url": PREFIX + "buckets",
        "lock_modes": LOCK_MODES,
        "errors": {} if refusal is None else {refusal.action.section: refusal.message},
        "drafts": {} if refusal is None else refusal.drafts,
    }
    status = 200 if refusal is None else refusal.status
    try:
        settings = await read_settings(BucketS3(pages.ctx.s3_as(session), bucket))
    except S3Refused as refused:
        # The bucket cannot be read at all (NoSuchBucket, AccessDenied): no sections.
        error = str(refused) if refusal is None else refusal.message
        status = refused.status if refusal is None else status
        return pages.page(session, "bucket_settings.html", status, settings=None,
                          cors_json="", error=error, **values)  # fmt: skip
    cors_json = json.dumps(settings.cors, indent=2, ensure_ascii=False) if settings.cors else ""
    return pages.page(session, "bucket_settings.html", status, settings=settings,
                      cors_json=cors_json, error=None, **values)  # fmt: skip
