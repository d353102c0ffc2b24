"""The console's pages under /_lakenode/console/ (docs/console.md): sign-in, overview, buckets.

Every page but sign-in needs a session (node/console/sessions.py); every POST but sign-in
needs the session's CSRF token and, when the browser sends one, an Origin of this node.
What a page shows or changes comes from S3 itself, asked as the signed-in key
(node/console/s3_self.py), so the console never decides access on its own.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp

from api.keyring import KeyRing
from node.console.s3_self import BucketEntry, S3Refused, SelfS3
from node.console.sessions import COOKIE_NAME, Session, SessionSigner, load_console_secret
from node.console.throttle import SignInThrottle

PREFIX: Final = "/_lakenode/console/"
FORM_BYTES_MAX: Final = 16 << 10  # sign-in and settings forms are small; refuse more
HERE = Path(__file__).parent
# Pages may load only this node's own stylesheet and scripts, and no one may frame them.
SECURITY_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@dataclass
class ConsoleContext:
    """What the console needs of the node, late-bound (the S3 app is built after it)."""

    data_dir: Path
    keyring: KeyRing
    s3_app: Callable[[], ASGIApp]
    region: str
    secure_cookies: bool  # HTTPS: cookies get the Secure attribute
    node_id: Callable[[], str]
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    clock: Callable[[], float] = time.time
    _signer: SessionSigner | None = None

    @property
    def signer(self) -> SessionSigner:
        # Made on first use: a node whose console is never opened keeps no console.key.
        if self._signer is None:
            self._signer = SessionSigner(load_console_secret(self.data_dir))
        return self._signer

    def active_secret(self, access_key: str) -> str | None:
        """The key's secret while the key may sign in (known and not disabled)."""
        if access_key != self.keyring.root_access_key:
            stored = self.keyring.stored_key(access_key)
            if stored is None or not stored.active:
                return None
        return self.keyring.secret_for(access_key)

    def s3_as(self, session: Session) -> SelfS3:
        secret = self.active_secret(session.access_key)
        if secret is None:  # disabled since the session was checked
            raise S3Refused(403, "AccessDenied", "The access key is disabled.")
        return SelfS3(self.s3_app(), session.access_key, secret, self.region)


class Pages:
    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every name shown is untrusted: keys, buckets, objects
            undefined=jinja2.StrictUndefined,
        )

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = self._env.get_template(name).render(prefix=PREFIX, **values)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def build_console_router(ctx: ConsoleContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    pages = Pages()
    stylesheet = (HERE / "static" / "console.css").read_bytes()

    @router.get(PREFIX + "static/console.css")
    async def css() -> Response:
        headers = {**SECURITY_HEADERS, "cache-control": "public, max-age=3600"}
        return Response(stylesheet, media_type="text/css", headers=headers)

    @router.get(PREFIX + "signin")
    async def signin_page() -> Response:
        return pages.render("signin.html", title="Sign in", session=None, error=None)

    @router.post(PREFIX + "signin")
    async def signin(request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return pages.render("signin.html", 413, title="Sign in", session=None,
                                error="The form is too large.")  # fmt: skip
        access_key, secret_key = form.get("access_key", ""), form.get("secret_key", "")
        client, now = _client(request), ctx.clock()
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
        signed_in = _redirect(PREFIX)
        _set_cookie(signed_in, ctx, ctx.signer.issue(access_key, expected, int(now)))
        return signed_in

    @router.post(PREFIX + "signout")
    async def signout(request: Request) -> Response:
        change = await _change(request, ctx, pages)
        if isinstance(change, Response):
            return change
        response = _redirect(PREFIX + "signin")
        response.delete_cookie(COOKIE_NAME, path=PREFIX, secure=ctx.secure_cookies,
                               httponly=True, samesite="strict")  # fmt: skip
        return response

    @router.get(PREFIX)
    async def overview(request: Request) -> Response:
        session = _session(request, ctx)
        if session is None:
            return _redirect(PREFIX + "signin")
        buckets, error = await _visible_buckets(ctx, session)
        return _page(pages, ctx, session, "overview.html", title="Overview",
                     node_id=ctx.node_id(), buckets=buckets, error=error)  # fmt: skip

    @router.get(PREFIX + "buckets")
    async def buckets_page(request: Request) -> Response:
        session = _session(request, ctx)
        if session is None:
            return _redirect(PREFIX + "signin")
        return await _buckets(pages, ctx, session, None, 200)

    @router.post(PREFIX + "buckets")
    async def bucket_action(request: Request) -> Response:
        change = await _change(request, ctx, pages)
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
                return await _buckets(pages, ctx, session, "Unknown action.", 400)
        except S3Refused as refused:
            return await _buckets(pages, ctx, session, str(refused), refused.status)
        return _redirect(PREFIX + "buckets")

    return router


async def _visible_buckets(
    ctx: ConsoleContext, session: Session
) -> tuple[list[BucketEntry], str | None]:
    """The buckets S3 lists for the key, or none and S3's refusal to show."""
    try:
        return await ctx.s3_as(session).list_buckets(), None
    except S3Refused as refused:
        return [], str(refused)


async def _buckets(
    pages: Pages, ctx: ConsoleContext, session: Session, error: str | None, status: int
) -> Response:
    buckets, refusal = await _visible_buckets(ctx, session)
    error = error or refusal
    return _page(pages, ctx, session, "buckets.html", status, title="Buckets",
                 buckets=buckets, error=error)  # fmt: skip


def _page(
    pages: Pages,
    ctx: ConsoleContext,
    session: Session,
    template: str,
    status: int = 200,
    **values: Any,
) -> Response:
    response = pages.render(
        template, status, session=session, csrf=ctx.signer.csrf_token(session), **values
    )
    now = int(ctx.clock())
    if session.needs_refresh(now, ctx.signer.idle_s):
        secret = ctx.active_secret(session.access_key)
        if secret is not None:
            _set_cookie(response, ctx, ctx.signer.refreshed(session, secret, now))
    return response


def _session(request: Request, ctx: ConsoleContext) -> Session | None:
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    return ctx.signer.check(cookie, ctx.active_secret, int(ctx.clock()))


@dataclass(frozen=True)
class Change:
    """A state-changing POST that passed the checks: its session and its form."""

    session: Session
    form: dict[str, str]


async def _change(request: Request, ctx: ConsoleContext, pages: Pages) -> Change | Response:
    """Check a state-changing POST: a session, no foreign Origin, the session's CSRF token.
    Returns the change, or the response that refuses it."""
    session = _session(request, ctx)
    if session is None:
        return _redirect(PREFIX + "signin")
    if not _same_origin(request):
        return _forbidden(pages, "The request came from another site.")
    form = await _form(request)
    if form is None:
        return _forbidden(pages, "The form is too large.", 413)
    if not ctx.signer.csrf_valid(session, form.get("csrf")):
        return _forbidden(pages, "The form's CSRF token is missing or wrong.")
    return Change(session, form)


def _forbidden(pages: Pages, message: str, status: int = 403) -> Response:
    return pages.render("error.html", status, title="Refused", session=None, error=message)


def _same_origin(request: Request) -> bool:
    """A browser names the page a POST comes from; it must be this node (SameSite=Strict
    cookies already keep other sites' POSTs unauthenticated: this is a second lock)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (first value of each field); None if it is too large."""
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > FORM_BYTES_MAX:
            return None
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def _set_cookie(response: Response, ctx: ConsoleContext, value: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=ctx.signer.max_s,
        path=PREFIX,
        secure=ctx.secure_cookies,
        httponly=True,
        samesite="strict",
    )
