"""The overview page: this node and its peers at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from node.console.buckets import visible_buckets
from node.console.web import PREFIX, Pages, redirect, session_of


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX)
    async def overview(request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        buckets, error = await visible_buckets(ctx, session)
        return pages.page(session, "overview.html", title="Overview", node_id=ctx.node_id(),
                          buckets=buckets, error=error)  # fmt: skip

    return router
