"""The Buckets page: list, create, delete (and each bucket's settings), as the signed-in key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from node.console.s3_self import BucketEntry, S3Refused
from node.console.sessions import Session
from node.console.web import PREFIX, ConsoleContext, Pages, checked_change, redirect, session_of


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX + "buckets")
    async def buckets_page(request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        return await _buckets(pages, session, None, 200)

    @router.post(PREFIX + "buckets")
    async def bucket_action(request: Request) -> Response:
        change = await checked_change(request, pages)
        if isinstance(change, Response):
            return change
        session, form = change.session, change.form
        name, action = form.get("name", ""), form.get("action", "")
        s3 = ctx.s3_as(session)
        try:
            if action == "create":
                await s3.create_bucket(name)
            elif action == "delete":
                await s3.delete_bucket(name)
            else:
                return await _buckets(pages, session, "Unknown action.", 400)
        except S3Refused as refused:
            return await _buckets(pages, session, str(refused), refused.status)
        return redirect(PREFIX + "buckets")

    return router


async def visible_buckets(
    ctx: ConsoleContext, session: Session
) -> tuple[list[BucketEntry], str | None]:
    """The buckets S3 lists for the key, or none and S3's refusal to show."""
    try:
        return await ctx.s3_as(session).list_buckets(), None
    except S3Refused as refused:
        return [], str(refused)


async def _buckets(pages: Pages, session: Session, error: str | None, status: int) -> Response:
    buckets, refusal = await visible_buckets(pages.ctx, session)
    return pages.page(session, "buckets.html", status, title="Buckets", buckets=buckets,
                      error=error or refusal)  # fmt: skip
