"""The console's router (docs/console.md): its static files, sign-in and sign-out, and the
pages, each from its own module (overview, buckets, objects, keys, replication).

Every page but sign-in needs a session (node/console/sessions.py); every POST but sign-in
needs the session's CSRF token and, when the browser sends one, an Origin of this node
(node/console/web.py). What a page shows or changes comes from S3 itself, asked as the
signed-in key (node/console/s3_self.py), so the console never decides access on its own.
"""

from __future__ import annotations

import hmac
from typing import Final

from fastapi import APIRouter, Request, Response

from node.console import bucket_settings, buckets, keys, objects, overview, replication
from node.console.sessions import COOKIE_NAME
from node.console.web import (
    HERE,
    PREFIX,
    SECURITY_HEADERS,
    ConsoleContext,
    Pages,
    checked_change,
    client_address,
    read_form,
    redirect,
    set_cookie,
)

MEDIA_TYPES: Final = {".css": "text/css", ".js": "text/javascript"}
PAGE_MODULES: Final = (overview, buckets, bucket_settings, objects, keys, replication)


def build_console_router(ctx: ConsoleContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    pages = Pages(ctx)
    _add_static_files(router)
    _add_sign_in(router, pages)
    for module in PAGE_MODULES:
        router.include_router(module.build_router(pages))
    return router


def _add_static_files(router: APIRouter) -> None:
    """Every stylesheet and script of static/, read once: the console fetches nothing else."""
    files = {
        path.name: (path.read_bytes(), MEDIA_TYPES[path.suffix])
        for path in sorted((HERE / "static").iterdir())
        if path.suffix in MEDIA_TYPES
    }
    headers = {**SECURITY_HEADERS, "cache-control": "public, max-age=3600"}

    @router.get(PREFIX + "static/{name}")
    async def static_file(name: str) -> Response:
        found = files.get(name)
        if found is None:
            return Response(b"no such file\n", status_code=404, media_type="text/plain")
        return Response(found[0], media_type=found[1], headers=headers)


def _add_sign_in(router: APIRouter, pages: Pages) -> None:
    ctx = pages.ctx

    @router.get(PREFIX + "signin")
    async def signin_page() -> Response:
        return pages.render("signin.html", title="Sign in", session=None, error=None)

    @router.post(PREFIX + "signin")
    async def signin(request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            return pages.render("signin.html", 413, title="Sign in", session=None,
                                error="The form is too large.")  # fmt: skip
        access_key, secret_key = form.get("access_key", ""), form.get("secret_key", "")
        client, now = client_address(request), ctx.clock()
        wait = ctx.throttle.wait_s(client, access_key, now)
        if wait > 0:
            response = pages.render(
                "signin.html", 429, title="Sign in", session=None,
                error=f"Too many failed sign-ins: try again in {int(wait) + 1} s.",
            )  # fmt: skip
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        expected = ctx.active_secret(access_key)
        if expected is None and await ctx.keyring.refresh():  # made a moment ago?
            expected = ctx.active_secret(access_key)
        if expected is None or not hmac.compare_digest(secret_key.encode(), expected.encode()):
            ctx.throttle.failed(client, access_key, now)
            return pages.render("signin.html", 401, title="Sign in", session=None,
                                error="Wrong access key or secret key.")  # fmt: skip
        ctx.throttle.succeeded(client, access_key)
        signed_in = redirect(PREFIX)
        set_cookie(signed_in, ctx, ctx.signer.issue(access_key, expected, int(now)))
        return signed_in

    @router.post(PREFIX + "signout")
    async def signout(request: Request) -> Response:
        change = await checked_change(request, pages)
        if isinstance(change, Response):
            return change
        response = redirect(PREFIX + "signin")
        response.delete_cookie(COOKIE_NAME, path=PREFIX, secure=ctx.secure_cookies,
                               httponly=True, samesite="strict")  # fmt: skip
        return response
