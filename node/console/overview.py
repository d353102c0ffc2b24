"""The overview page: this node and its peers at a glance, with charts of the last hour.

``GET PREFIX`` renders every figure on the server (the page works without JavaScript);
static/overview.js then polls ``GET PREFIX + "api/overview"`` every 5 s for the same
document (node/console/node_facts.py NodeView.overview), updates the figures and draws the
charts of request rate and per-peer lag from the sampler's history (node/console/history.py).
The figures name peers and count requests, no object: any signed-in key may see them, as
anyone may scrape /_lakenode/metrics.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from node.console.buckets import visible_buckets
from node.console.web import PREFIX, Pages, json_answer, json_error, redirect, session_of


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX)
    async def overview(request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        buckets, error = await visible_buckets(ctx, session)
        figures = await ctx.node.overview() if ctx.node is not None else None
        return pages.page(session, "overview.html", title="Overview", node_id=ctx.node_id(),
                          buckets=buckets, error=error, doc=figures)  # fmt: skip

    @router.get(PREFIX + "api/overview")
    async def overview_document(request: Request) -> Response:
        # No idle-expiry refresh here: a page left open does not keep its session alive.
        if session_of(request, ctx) is None:
            return json_error(401, "Signed out: sign in again.")
        if ctx.node is None:
            return json_error(503, "This node's figures are not available.")
        return json_answer(await ctx.node.overview())

    return router
