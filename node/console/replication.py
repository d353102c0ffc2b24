"""The Replication page: each peer's figures and counters, the conflicts, and "Validate now".

Every signed-in key sees the peers' figures (what /_lakenode/metrics shows anyone). The
conflicts and the differences a validate found name buckets and objects of every owner, so
only the root key sees them, and only the root key may run validate (as the CLI needs the
root or a replication key): other keys get no button, and a POST they forge gets 403.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from node.console import figures
from node.console.node_facts import NodeView
from node.console.web import PREFIX, Pages, checked_change, redirect, session_of
from storage.sync.conflicts import ConflictRecord, list_conflicts

CONFLICTS_SHOWN: Final = 100


def recent_conflicts(conn: sqlite3.Connection, limit: int) -> tuple[int, list[ConflictRecord]]:
    """How many conflicts are kept, and the newest ``limit`` of them, newest first."""
    total, newest = conn.execute("SELECT count(*), max(id) FROM conflicts").fetchone()
    if newest is None:
        return 0, []
    # Ids only grow and GC removes the oldest: the newest ``limit`` are the ids after this.
    records = list_conflicts(conn, None, max(0, newest - limit), limit)
    return int(total), records[::-1]


def conflict_row(record: ConflictRecord) -> dict[str, str]:
    return {
        "time": figures.moment(record.recorded_ms),
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "winner": record.winner_origin,
        "loser": record.origin,
        "size": figures.size(record.size),
        "conditional": "yes" if record.conditional else "",
    }


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx

    @router.get(PREFIX + "replication")
    async def replication(request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        view = ctx.node
        if view is None:
            return pages.page(session, "replication.html", 503, title="Replication",
                              error="This node's replication figures are not available.",
                              **_empty_values())  # fmt: skip
        values = await _page_values(view, root=ctx.is_root(session))
        return pages.page(session, "replication.html", title="Replication", error=None, **values)

    @router.post(PREFIX + "replication/validate")
    async def validate_now(request: Request) -> Response:
        change = await checked_change(request, pages)
        if isinstance(change, Response):
            return change
        if not ctx.is_root(change.session):
            return pages.forbidden("Only the root key may run validate.")
        view = ctx.node
        site = view.site() if view is not None else None
        pullers = view.sources.pullers if view is not None else None
        if view is None or site is None or pullers is None or pullers.sign is None:
            return pages.forbidden("This node's store is not open.", 503)
        urls = [state.url for state in pullers.states]
        run = await view.validator.run(
            site, urls, pullers.sign, view.sources.peer_verify, change.session.access_key
        )
        view.forget_reports()  # the next view shows the recorded outcome
        if run is None:
            values = await _page_values(view, root=True)
            return pages.page(change.session, "replication.html", 409, title="Replication",
                              error="A validate is already running: try again when it ends.",
                              **values)  # fmt: skip
        return redirect(PREFIX + "replication#validate")

    return router


async def _page_values(view: NodeView, *, root: bool) -> dict[str, Any]:
    site = view.site()
    total, conflicts = 0, []
    if root and site is not None:
        total, records = await site.store.query(recent_conflicts, CONFLICTS_SHOWN)
        conflicts = [conflict_row(record) for record in records]
    run = view.validator.last if root else None
    return {
        "peers": await view.peer_rows(),
        "conflicts": conflicts,
        "conflicts_total": total,
        "conflicts_shown_max": CONFLICTS_SHOWN,
        "run": run,
        "run_time": figures.moment(run.finished_ms) if run is not None else "",
        "validating": view.validator.running,
    }


def _empty_values() -> dict[str, Any]:
    return {"peers": [], "conflicts": [], "conflicts_total": 0,
            "conflicts_shown_max": CONFLICTS_SHOWN, "run": None, "run_time": "",
            "validating": False}  # fmt: skip
