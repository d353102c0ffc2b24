"""The Keys page (root key only): list the stored access keys, create one (its secret shown
once), disable, enable or delete one, and edit a key's identity policy.

Keys are not S3 resources, so S3 cannot decide who may change them: the page itself refuses
every key but the root key (403, the page and its POSTs alike), as ``lakenode keys`` needs
the data dir. The catalog work is in key_admin.py. A secret is rendered once, in the answer
to the create POST (``cache-control: no-store``), and never again: the list and a key's page
have no secret to show.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from node.console.key_admin import KeyAdmin, KeyChangeRefused, KeyForm, KeyView
from node.console.sessions import Session
from node.console.web import PREFIX, Change, Pages, checked_change, redirect, session_of

ROOT_ONLY: Final = "Only the root key may manage access keys."
STATUS_OF_ACTION: Final = {"disable": "disabled", "enable": "active"}


def build_router(pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    ctx = pages.ctx
    admin = KeyAdmin(ctx)

    @router.get(PREFIX + "keys")
    async def keys_page(request: Request) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        if not ctx.is_root(session):
            return pages.forbidden(ROOT_ONLY)
        return await _list(pages, admin, session)

    @router.get(PREFIX + "keys/{access_key}")
    async def key_page(request: Request, access_key: str) -> Response:
        session = session_of(request, ctx)
        if session is None:
            return redirect(PREFIX + "signin")
        if not ctx.is_root(session):
            return pages.forbidden(ROOT_ONLY)
        return await _detail(pages, admin, session, access_key)

    @router.post(PREFIX + "keys")
    async def key_action(request: Request) -> Response:
        change = await checked_change(request, pages)
        if isinstance(change, Response):
            return change
        if not ctx.is_root(change.session):
            return pages.forbidden(ROOT_ONLY)
        return await _act(pages, admin, change)

    return router


async def _act(pages: Pages, admin: KeyAdmin, change: Change) -> Response:
    """Do the form's action; a refusal is shown on the page the form came from."""
    session, form = change.session, change.form
    action, access_key = form.get("action", ""), form.get("access_key", "")
    if action == "create":
        return await _create(pages, admin, session, KeyForm.of(form))
    if action not in ("disable", "enable", "delete", "policy"):
        return await _list(pages, admin, session, error="Unknown action.", status=400)
    try:
        if await admin.one(access_key) is None:
            raise KeyChangeRefused(404, f"No access key {access_key!r}.")
    except KeyChangeRefused as refused:
        return await _list(pages, admin, session, error=str(refused), status=refused.status)
    try:
        if action == "delete":
            if form.get("confirm") != "yes":
                raise KeyChangeRefused(400, "Tick the box to confirm the deletion.")
            await admin.delete(access_key)
            return redirect(PREFIX + "keys")
        if action == "policy":
            await admin.set_policy(access_key, form.get("policy", ""))
        else:
            await admin.set_status(access_key, STATUS_OF_ACTION[action])
    except KeyChangeRefused as refused:
        if form.get("from") == "list":
            return await _list(pages, admin, session, error=str(refused), status=refused.status)
        return await _detail(pages, admin, session, access_key, error=str(refused),
                             status=refused.status, policy=form.get("policy"))  # fmt: skip
    if form.get("from") == "list":
        return redirect(PREFIX + "keys")
    return redirect(key_url(access_key))


async def _create(pages: Pages, admin: KeyAdmin, session: Session, wanted: KeyForm) -> Response:
    try:
        created = await admin.create(wanted)
    except KeyChangeRefused as refused:
        return await _list(pages, admin, session, form=wanted, error=str(refused),
                           status=refused.status)  # fmt: skip
    # The only page that ever shows a secret: not stored by the browser (no-store), not
    # reachable again (the list and the key's page have no secret to show).
    return pages.page(session, "keys_created.html", title="Key created", error=None,
                      key=created.view, secret=created.secret_key, key_url=key_url)  # fmt: skip


async def _list(
    pages: Pages,
    admin: KeyAdmin,
    session: Session,
    *,
    form: KeyForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    try:
        listed = await admin.listed()
    except KeyChangeRefused as refused:
        listed, error, status = [], str(refused), refused.status
    return pages.page(session, "keys.html", status, title="Access keys", keys=listed,
                      form=form or KeyForm(), error=error, key_url=key_url,
                      root_access_key=pages.ctx.keyring.root_access_key)  # fmt: skip


async def _detail(
    pages: Pages,
    admin: KeyAdmin,
    session: Session,
    access_key: str,
    *,
    error: str | None = None,
    status: int = 200,
    policy: str | None = None,
) -> Response:
    try:
        key: KeyView | None = await admin.one(access_key)
    except KeyChangeRefused as refused:
        return await _list(pages, admin, session, error=str(refused), status=refused.status)
    if key is None:
        return await _list(pages, admin, session, error=f"No access key {access_key!r}.",
                           status=404)  # fmt: skip
    return pages.page(session, "keys_detail.html", status, title=f"Access key {access_key}",
                      key=key, error=error, key_url=key_url,
                      policy=key.policy if policy is None else policy)  # fmt: skip


def key_url(access_key: str) -> str:
    return PREFIX + "keys/" + quote(access_key, safe="")
