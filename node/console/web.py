"""What every console page shares: the node's context, rendering, sessions on requests, the
checks of a state-changing POST, and small response helpers (docs/console.md).

Page modules (buckets.py, objects.py, keys.py, overview.py) each build one router from a
:class:`ConsoleContext` and :class:`Pages`; routes.py puts them together with sign-in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.types import ASGIApp

from api.keyring import KeyRing
from node.console.s3_self import S3Refused, SelfS3
from node.console.sessions import COOKIE_NAME, Session, SessionSigner, load_console_secret
from node.console.throttle import SignInThrottle

if TYPE_CHECKING:
    from node.console.node_facts import NodeView
    from storage.store import Store

PREFIX: Final = "/_lakenode/console/"
FORM_BYTES_MAX: Final = 16 << 10  # sign-in and settings forms are small; refuse more
HERE: Final = Path(__file__).parent
# Pages may load only this node's own stylesheet and scripts, and no one may frame them.
SECURITY_HEADERS: Final = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Not no-referrer: under it a browser sends "Origin: null" with the console's own form
    # POSTs, and the same-origin check could not tell them from another site's.
    "referrer-policy": "same-origin",
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
    # The node's open store, for the Keys page's catalog reads and writes (the root key's
    # admin operations, as the CLI's); raises StoreUnavailable while the store is closed.
    key_store: Callable[[], Store] | None = None
    # The running node's figures (overview, replication); None where there is no node.
    node: NodeView | None = None
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

    def is_root(self, session: Session) -> bool:
        return session.access_key == self.keyring.root_access_key

    def may_write(self, session: Session) -> bool:
        """Whether to show write controls: not for a read-only key. This only hides buttons;
        S3 itself refuses a read-only key's writes whatever the page shows."""
        if self.is_root(session):
            return True
        stored = self.keyring.stored_key(session.access_key)
        return stored is not None and not stored.read_only

    def s3_as(self, session: Session) -> SelfS3:
        secret = self.active_secret(session.access_key)
        if secret is None:  # disabled since the session was checked
            raise S3Refused(403, "AccessDenied", "The access key is disabled.")
        return SelfS3(self.s3_app(), session.access_key, secret, self.region)


class Pages:
    """The templates, rendered with autoescape (every name shown is untrusted)."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # keys, buckets, objects: all untrusted
            undefined=jinja2.StrictUndefined,
        )

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = self._env.get_template(name).render(prefix=PREFIX, **values)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def page(self, session: Session, template: str, status: int = 200, **values: Any) -> Response:
        """A signed-in page: the session's CSRF token for its forms, whether to show write
        controls and root-only links, and the idle expiry pushed back when due."""
        ctx = self.ctx
        response = self.render(
            template,
            status,
            session=session,
            csrf=ctx.signer.csrf_token(session),
            may_write=ctx.may_write(session),
            is_root=ctx.is_root(session),
            **values,
        )
        now = int(ctx.clock())
        if session.needs_refresh(now, ctx.signer.idle_s):
            secret = ctx.active_secret(session.access_key)
            if secret is not None:
                set_cookie(response, ctx, ctx.signer.refreshed(session, secret, now))
        return response

    def forbidden(self, message: str, status: int = 403) -> Response:
        return self.render("error.html", status, title="Refused", session=None, error=message)


def session_of(request: Request, ctx: ConsoleContext) -> Session | None:
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    return ctx.signer.check(cookie, ctx.active_secret, int(ctx.clock()))


@dataclass(frozen=True)
class Change:
    """A state-changing POST that passed the checks: its session and its form."""

    session: Session
    form: dict[str, str]


async def checked_change(
    request: Request, pages: Pages, limit: int = FORM_BYTES_MAX
) -> Change | Response:
    """Check a state-changing form POST: a session, no foreign Origin, the session's CSRF
    token. Returns the change, or the response that refuses it. ``limit``: the form's size
    cap, raised by pages whose forms carry a document (a bucket policy, CORS rules)."""
    ctx = pages.ctx
    session = session_of(request, ctx)
    if session is None:
        return redirect(PREFIX + "signin")
    if not same_origin(request):
        return pages.forbidden("The request came from another site.")
    form = await read_form(request, limit)
    if form is None:
        return pages.forbidden("The form is too large.", 413)
    if not ctx.signer.csrf_valid(session, form.get("csrf")):
        return pages.forbidden("The form's CSRF token is missing or wrong.")
    return Change(session, form)


def same_origin(request: Request) -> bool:
    """A browser names the page a POST comes from; it must be this node (SameSite=Strict
    cookies already keep other sites' POSTs unauthenticated: this is a second lock)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request, limit: int = FORM_BYTES_MAX) -> dict[str, str] | None:
    """An urlencoded form body (first value of each field); None if it is too large."""
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            return None
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


def set_cookie(response: Response, ctx: ConsoleContext, value: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=ctx.signer.max_s,
        path=PREFIX,
        secure=ctx.secure_cookies,
        httponly=True,
        samesite="strict",
    )


@dataclass(frozen=True)
class ScriptCall:
    """A script's POST (JSON) that passed the checks: its session and its JSON object."""

    session: Session
    body: dict[str, Any]


async def checked_script_call(request: Request, pages: Pages) -> ScriptCall | Response:
    """Check a page script's state-changing POST: a session, no foreign Origin, the CSRF
    token in the ``x-csrf-token`` header, and a JSON object body. Refusals are JSON."""
    ctx = pages.ctx
    session = session_of(request, ctx)
    if session is None:
        return json_error(401, "Signed out: sign in again.")
    if not same_origin(request):
        return json_error(403, "The request came from another site.")
    if not ctx.signer.csrf_valid(session, request.headers.get("x-csrf-token")):
        return json_error(403, "The CSRF token is missing or wrong.")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > FORM_BYTES_MAX:
            return json_error(413, "The request is too large.")
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return json_error(400, "The body is not JSON.")
    if not isinstance(document, dict):
        return json_error(400, "The body is not a JSON object.")
    return ScriptCall(session, document)


def json_answer(document: Any, status: int = 200) -> Response:
    return JSONResponse(document, status_code=status, headers=SECURITY_HEADERS)


def json_error(status: int, message: str) -> Response:
    return json_answer({"error": message}, status)
