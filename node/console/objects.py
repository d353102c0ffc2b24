"""The object browser: prefixes, objects, versions, uploads and share links (docs/console.md).

* ``browse/{bucket}?prefix=P&token=T``: one page of a prefix (ListObjectsV2, delimiter '/'),
  or with ``versions=1`` its versions (ListObjectVersions, from ``key_marker`` and
  ``version_marker``), and the upload controls (static/objects.js).
* ``object/{bucket}?key=K&version=V``: an object's facts, tags, retention and legal hold,
  versions, download and share links; its forms POST to ``object/{bucket}``.
* ``api/presign``: the upload script's presigned URLs (objects_upload.py).

Every read and change is an S3 request signed as the signed-in key (s3_objects.py), so S3
decides; the pages show its refusals as text.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from node.console import s3_objects
from node.console.objects_upload import SINGLE_PUT_MAX, presign_answer
from node.console.objects_view import (
    DOWNLOAD_EXPIRES_S,
    LOCK_MODES,
    SHARE_EXPIRIES,
    TAGS_MAX,
    FormError,
    Links,
    base_url,
    breadcrumb,
    download_disposition,
    expiry_label,
    human_size,
    legal_hold_of,
    parent_prefix,
    retention_of,
    share_expiry,
    tags_of,
)
from node.console.s3_self import S3Refused, SelfS3, bucket_path, query_string
from node.console.sessions import Session
from node.console.web import (
    PREFIX,
    Pages,
    checked_change,
    checked_script_call,
    redirect,
    session_of,
)

FORM_ACTIONS = ("delete", "tags", "retention", "legal_hold", "share")


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX + "browse/{bucket}")
    async def browse_page(request: Request, bucket: str) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        return await _browse(pages, session, bucket, dict(request.query_params))

    @router.get(PREFIX + "object/{bucket}")
    async def object_page(request: Request, bucket: str) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        key, version = request.query_params.get("key", ""), request.query_params.get("version")
        view = ObjectView(pages, request, session, bucket, key, version or None)
        return await view.render()

    @router.post(PREFIX + "object/{bucket}")
    async def object_action(request: Request, bucket: str) -> Response:
        change = await checked_change(request, pages)
        if isinstance(change, Response):
            return change
        form = change.form
        view = ObjectView(pages, request, change.session, bucket, form.get("key", ""),
                          form.get("version") or None)  # fmt: skip
        return await view.act(form.get("action", ""), form)

    @router.post(PREFIX + "api/presign")
    async def presign(request: Request) -> Response:
        call = await checked_script_call(request, pages)
        if isinstance(call, Response):
            return call
        return await presign_answer(request, ctx, call)

    return router


async def _browse(pages: Pages, session: Session, bucket: str, query: dict[str, str]) -> Response:
    """One page of a prefix's objects, or of its versions with ``versions=1``."""
    prefix, versions = query.get("prefix", ""), query.get("versions") == "1"
    links = Links(bucket)
    s3 = pages.ctx.s3_as(session)
    listing: s3_objects.ListingPage | None = None
    history: s3_objects.VersionsPage | None = None
    error, status = None, 200
    try:
        if versions:
            history = await s3_objects.list_versions(
                s3, bucket, prefix, query.get("key_marker", ""), query.get("version_marker", "")
            )
        else:
            listing = await s3_objects.list_prefix(s3, bucket, prefix, query.get("token"))
    except S3Refused as refused:
        error, status = str(refused), refused.status
    return pages.page(
        session, "objects.html", status, title=bucket, error=error, bucket=bucket,
        prefix_shown=prefix, crumbs=breadcrumb(prefix), links=links, listing=listing,
        history=history, versions=versions, human_size=human_size,
        single_put_max=SINGLE_PUT_MAX, paged=bool(query.get("token") or query.get("key_marker")),
    )  # fmt: skip


class ObjectView:
    """One object's page (``key``, at ``version`` when given) and its forms."""

    def __init__(
        self, pages: Pages, request: Request, session: Session, bucket: str, key: str,
        version: str | None,
    ) -> None:  # fmt: skip
        self.pages, self.request, self.session = pages, request, session
        self.bucket, self.key, self.version = bucket, key, version
        self.links = Links(bucket)

    @property
    def s3(self) -> SelfS3:
        return self.pages.ctx.s3_as(self.session)

    async def act(self, action: str, form: dict[str, str]) -> Response:
        """Do one form's change, then back to the page (303); S3's refusal or a bad field
        re-renders the page with the error, with S3's status (400 for a bad field)."""
        if not self.key:
            return await self.render("Which object? The form names no key.", 400)
        if action not in FORM_ACTIONS:
            return await self.render("Unknown action.", 400)
        try:
            if action == "share":
                return await self._share(form)
            await self._change(action, form)
        except FormError as bad:
            return await self.render(str(bad), 400)
        except S3Refused as refused:
            return await self.render(str(refused), refused.status)
        if action == "delete":
            return redirect(self.links.browse(parent_prefix(self.key), versions=bool(self.version)))
        return redirect(self.links.object(self.key, self.version))

    async def _change(self, action: str, form: dict[str, str]) -> None:
        s3, bucket, key, version = self.s3, self.bucket, self.key, self.version
        if action == "delete":
            await s3_objects.delete_object(s3, bucket, key, version)
        elif action == "tags":
            await s3_objects.put_object_tags(s3, bucket, key, version, tags_of(form))
        elif action == "retention":
            mode, until = retention_of(form)
            bypass = form.get("bypass_governance") == "on"
            await s3_objects.put_retention(s3, bucket, key, version, mode, until, bypass)
        else:
            await s3_objects.put_legal_hold(s3, bucket, key, version, legal_hold_of(form))

    async def _share(self, form: dict[str, str]) -> Response:
        """The page again, with a presigned GET of the chosen expiry to copy."""
        seconds = share_expiry(form.get("expires", ""))
        params = {"versionId": self.version} if self.version else {}
        url = self.s3.presign("GET", base_url(self.request, self.pages.ctx),
                              bucket_path(self.bucket, self.key), query_string(params),
                              seconds)  # fmt: skip
        return await self.render(
            share={"url": url, "seconds": seconds, "label": expiry_label(seconds)}
        )

    async def render(
        self, error: str | None = None, status: int = 200, share: dict[str, Any] | None = None
    ) -> Response:
        if not self.key:
            return self._page(error or "Which object? The address names no key.", 400, None)
        values = await self._facts()
        head_error = values.pop("head_error")
        if error is None and head_error is not None:
            error, status = head_error
        return self._page(error, status, share, **values)

    def _page(
        self, error: str | None, status: int, share: dict[str, Any] | None, **values: Any
    ) -> Response:
        defaults: dict[str, Any] = {
            "head": None, "delete_marker": False, "tags": [], "tags_error": None,
            "lock": s3_objects.LockState(), "object_versions": [], "more_versions": False,
            "versions_error": None, "download_url": None,
        }  # fmt: skip
        return self.pages.page(
            self.session, "object.html", status, title=self.key or "Object", error=error,
            bucket=self.bucket, key=self.key, version=self.version, links=self.links,
            parent=parent_prefix(self.key), crumbs=breadcrumb(parent_prefix(self.key)),
            share=share, share_expiries=SHARE_EXPIRIES, tag_rows=TAGS_MAX,
            lock_modes=LOCK_MODES, human_size=human_size, **(defaults | values),
        )  # fmt: skip

    async def _facts(self) -> dict[str, Any]:
        """What S3 says of the object: each part asked on its own, so that one refusal (no
        object lock on the bucket, no right to read tags) leaves the rest shown."""
        s3, bucket, key, version = self.s3, self.bucket, self.key, self.version
        facts: dict[str, Any] = {"head_error": None}
        try:
            versions, more = await s3_objects.object_versions(s3, bucket, key)
            facts |= {"object_versions": versions, "more_versions": more}
        except S3Refused as refused:
            versions, facts["versions_error"] = [], str(refused)
        shown = next((v for v in versions if v.version_id == version), None)
        if shown is not None and shown.delete_marker:
            return facts | {"delete_marker": True}  # a marker has no content, tags or lock
        try:
            facts["head"] = await s3_objects.head_object(s3, bucket, key, version)
        except S3Refused as refused:
            facts["head_error"] = (_head_refusal(refused, facts.get("versions_error")),
                                   refused.status)  # fmt: skip
            return facts
        try:
            facts["tags"] = await s3_objects.object_tags(s3, bucket, key, version)
        except S3Refused as refused:
            facts["tags_error"] = str(refused)
        facts["lock"] = await s3_objects.lock_state(s3, bucket, key, version)
        facts["download_url"] = self._download_url()
        return facts

    def _download_url(self) -> str:
        params = {"response-content-disposition": download_disposition(self.key)}
        if self.version:
            params["versionId"] = self.version
        return self.s3.presign("GET", base_url(self.request, self.pages.ctx),
                               bucket_path(self.bucket, self.key), query_string(params),
                               DOWNLOAD_EXPIRES_S)  # fmt: skip


def _head_refusal(refused: S3Refused, listing_refusal: str | None) -> str:
    """What to show for a HeadObject refusal, which has no body to name its code: the
    listing's refusal of the same key when there is one (NoSuchBucket, AccessDenied), else
    AWS's code for the status."""
    if not refused.code.startswith("HTTP"):
        return str(refused)
    if listing_refusal is not None:
        return listing_refusal
    if refused.status == 404:
        return "NoSuchKey: The specified key does not exist."
    return str(refused)
