"""CORS: bucket configuration (``?cors``), OPTIONS preflight, and headers on actual requests.

Browsers never sign a preflight, so :func:`preflight` runs before authentication and
answers from the bucket's rules alone. Rules are parsed once per document and kept per
bucket for a second (api/document_cache.py): a request carrying ``Origin`` costs a dict lookup,
not an XML parse; this node's own Put/DeleteBucketCors invalidate at once, and a change made
elsewhere (replication) shows up within that second.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from starlette.requests import Request
from starlette.responses import Response

from api import xml
from api.body import read_small_body
from api.context import S3Context
from api.document_cache import DocumentCache, PerStore
from api.errors import S3Error
from api.router import split_target
from api.settings import ApiSettings
from storage.errors import NoSuchBucket, NoSuchConfiguration, StorageError
from storage.store import Store

log = logging.getLogger("lakenode.api")

CORS_RULES_MAX = 100
CORS_BODY_BYTES_MAX = 64 * 1024
CORS_METHODS = frozenset(("GET", "PUT", "POST", "DELETE", "HEAD"))
RULE_ID_CHARS_MAX = 255
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
_RULE_FIELDS = frozenset(
    ("ID", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader", "MaxAgeSeconds")
)


def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """A pattern where ``*`` matches any run of characters (AWS allows one per value)."""
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True)
class CorsRule:
    rule_id: str | None
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int | None

    @functools.cached_property
    def _origin_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_wildcard(o, ignore_case=False) for o in self.origins)

    @functools.cached_property
    def _header_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(_wildcard(h, ignore_case=True) for h in self.headers)

    def allowed_origin(self, origin: str, method: str) -> str | None:
        """The Access-Control-Allow-Origin value if this rule admits origin + method."""
        if method not in self.methods:
            return None
        for pattern, compiled in zip(self.origins, self._origin_patterns, strict=True):
            if compiled.match(origin):
                return "*" if pattern == "*" else origin
        return None

    def allows_headers(self, requested: list[str]) -> bool:
        return all(any(p.match(name) for p in self._header_patterns) for name in requested)

    def response_headers(self, allow_origin: str) -> dict[str, str]:
        headers = {
            "Access-Control-Allow-Origin": allow_origin,
            "Access-Control-Allow-Methods": ", ".join(self.methods),
            "Vary": VARY,
        }
        if allow_origin != "*":
            headers["Access-Control-Allow-Credentials"] = "true"
        if self.expose:
            headers["Access-Control-Expose-Headers"] = ", ".join(self.expose)
        if self.max_age is not None:
            headers["Access-Control-Max-Age"] = str(self.max_age)
        return headers


# ---- the configuration document -----------------------------------------------------------


def _malformed(detail: str = "") -> S3Error:
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our "
        "published schema" + (f" ({detail})" if detail else ""),
    )


def parse_cors(body: bytes) -> tuple[CorsRule, ...]:
    """A CORSConfiguration document -> rules; MalformedXML or InvalidRequest if invalid."""
    root = xml.parse(body)
    if xml.local_name(root) != "CORSConfiguration":
        raise _malformed()
    rules = []
    for element in root:
        if xml.local_name(element) != "CORSRule":
            raise _malformed(f"unexpected element {xml.local_name(element)}")
        rules.append(_parse_rule(element))
    if not rules:
        raise _malformed("at least one CORSRule is required")
    if len(rules) > CORS_RULES_MAX:
        raise _malformed(f"at most {CORS_RULES_MAX} CORSRule elements are allowed")
    return tuple(rules)


def _parse_rule(element: Element) -> CorsRule:
    values: dict[str, list[str]] = {name: [] for name in _RULE_FIELDS}
    for child in element:
        name = xml.local_name(child)
        if name not in _RULE_FIELDS or len(child):
            raise _malformed(f"unexpected element {name} in CORSRule")
        values[name].append((child.text or "").strip())
    if not values["AllowedOrigin"] or not values["AllowedMethod"]:
        raise _malformed("a CORSRule needs AllowedOrigin and AllowedMethod")
    if len(values["ID"]) > 1 or len(values["MaxAgeSeconds"]) > 1:
        raise _malformed("ID and MaxAgeSeconds may appear once per CORSRule")
    for method in values["AllowedMethod"]:
        if method not in CORS_METHODS:
            raise S3Error(
                "InvalidRequest",
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}",
            )
    for name in ("AllowedOrigin", "AllowedHeader"):
        for value in values[name]:
            if value.count("*") > 1:
                raise S3Error(
                    "InvalidRequest", f'{name} "{value}" can not have more than one wildcard.'
                )
    rule_id = values["ID"][0] if values["ID"] else None
    if rule_id is not None and len(rule_id) > RULE_ID_CHARS_MAX:
        raise _malformed(f"ID is longer than {RULE_ID_CHARS_MAX} characters")
    return CorsRule(
        rule_id,
        tuple(values["AllowedOrigin"]),
        tuple(values["AllowedMethod"]),
        tuple(values["AllowedHeader"]),
        tuple(values["ExposeHeader"]),
        _max_age(values["MaxAgeSeconds"]),
    )


def _max_age(values: list[str]) -> int | None:
    if not values:
        return None
    if not values[0].isdigit():
        raise _malformed("MaxAgeSeconds must be a non-negative integer")
    return int(values[0])


def render_cors(rules: tuple[CorsRule, ...]) -> bytes:
    """The normalized document: what is stored, and what GetBucketCors returns."""
    return xml.render("CORSConfiguration", [("CORSRule", _rule_nodes(r)) for r in rules])


def _rule_nodes(rule: CorsRule) -> list[xml.Node]:
    nodes: list[xml.Node] = [("ID", rule.rule_id)]
    nodes += [("AllowedHeader", h) for h in rule.headers]
    nodes += [("AllowedMethod", m) for m in rule.methods]
    nodes += [("AllowedOrigin", o) for o in rule.origins]
    nodes += [("ExposeHeader", e) for e in rule.expose]
    nodes.append(("MaxAgeSeconds", rule.max_age))
    return nodes


@functools.lru_cache(maxsize=1024)
def _rules_of(document: str) -> tuple[CorsRule, ...]:
    """Rules of a stored (already validated) document; parsed once per distinct document."""
    return parse_cors(document.encode())


# ---- the per-bucket cache ---------------------------------------------------------------------


cache_for: PerStore[tuple[CorsRule, ...]] = PerStore(
    lambda store: DocumentCache(store, "cors", _rules_of, (), (S3Error,))
)


# ---- Put/Get/DeleteBucketCors -----------------------------------------------------------------


async def put_bucket_cors(ctx: S3Context) -> Response:
    rules = parse_cors(await read_small_body(ctx.request, ctx.auth, CORS_BODY_BYTES_MAX))
    await ctx.store.put_bucket_document(ctx.bucket_name, "cors", render_cors(rules).decode())
    cache_for(ctx.store).invalidate(ctx.bucket_name)
    return Response(status_code=200)


async def get_bucket_cors(ctx: S3Context) -> Response:
    try:
        document = await ctx.store.get_bucket_document(ctx.bucket_name, "cors")
    except NoSuchConfiguration as exc:
        raise S3Error(
            "NoSuchCORSConfiguration", "The CORS configuration does not exist", ctx.resource
        ) from exc
    return Response(document.encode(), media_type="application/xml")


async def delete_bucket_cors(ctx: S3Context) -> Response:
    await ctx.store.put_bucket_document(ctx.bucket_name, "cors", None)
    cache_for(ctx.store).invalidate(ctx.bucket_name)
    return Response(status_code=204)


# ---- preflight and actual requests ------------------------------------------------------------


def _forbidden() -> S3Error:
    return S3Error(
        "AccessForbidden",
        "CORSResponse: This CORS request is not allowed. This is usually because the "
        "evaluation of Origin, request method / Access-Control-Request-Method or "
        "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
    )


def _bucket(request: Request, settings: ApiSettings) -> str | None:
    host = request.headers.get("host", "")
    return split_target(request.scope["path"], host, settings.domain).bucket


async def preflight(request: Request, settings: ApiSettings, store: Store) -> Response:
    """Answer an OPTIONS preflight from the bucket's rules (no authentication)."""
    bucket = _bucket(request, settings)
    if bucket is None:
        raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
    origin = request.headers.get("origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
    method = request.headers.get("access-control-request-method")
    if not method:
        raise S3Error("BadRequest", "Invalid Access-Control-Request-Method: null")
    requested = _requested_headers(request.headers)
    try:
        rules = await cache_for(store).get(bucket)
    except NoSuchBucket as exc:
        raise _forbidden() from exc
    for rule in rules:
        allow_origin = rule.allowed_origin(origin, method)
        if allow_origin is not None and rule.allows_headers(requested):
            headers = rule.response_headers(allow_origin)
            if requested:
                headers["Access-Control-Allow-Headers"] = ", ".join(requested)
            return Response(status_code=200, headers=headers)
    raise _forbidden()


def _requested_headers(headers: Mapping[str, str]) -> list[str]:
    raw = headers.get("access-control-request-headers", "")
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


async def actual_request_headers(
    request: Request, settings: ApiSettings, store: Store
) -> dict[str, str]:
    """CORS headers for a non-preflight request with an Origin a rule admits, else {}."""
    origin = request.headers.get("origin")
    bucket = _bucket(request, settings)
    if not origin or bucket is None:
        return {}
    try:
        rules = await cache_for(store).get(bucket)
    except StorageError:
        return {}  # no bucket (or it cannot be read): the response stands as it is
    for rule in rules:
        allow_origin = rule.allowed_origin(origin, request.method)
        if allow_origin is not None:
            return rule.response_headers(allow_origin)
    return {}
