"""The console's S3 calls: requests to the node's own S3 handler, signed as the signed-in key.

The console decides nothing about access. Each page asks the S3 surface in-process (an ASGI
call, no socket), with a SigV4 signature made with the key's own secret. So key policies,
bucket policies, ACLs, the public-access block and the write gate decide exactly as they
would for awscli, and a refusal comes back as S3's own error code. These calls also appear
in the access log, under the key that made them.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import defusedxml.ElementTree as SafeElementTree
import httpx
from starlette.types import ASGIApp

from api.sigv4_signing import presign_url, sign_headers

SELF_URL = "http://console.lakenode.internal"  # never resolved: the transport is the app
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class S3Refused(Exception):
    """S3 answered with an error: its code and message, as any client would see them."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class BucketEntry:
    name: str
    created: str


class SelfS3:
    """Signed S3 requests to ``app`` on behalf of one key."""

    def __init__(self, app: ASGIApp, access_key: str, secret_key: str, region: str) -> None:
        self._app = app
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region

    async def request(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send to ``path`` (URL-encoded by the caller: see bucket_path) with ``query``
        (encoded: see query_string); raise S3Refused for an S3 error answer (status >= 300).
        A body is signed by its SHA-256, as the SDKs do."""
        url = SELF_URL + path + (f"?{query}" if query else "")
        payload_hash = hashlib.sha256(body).hexdigest()
        signed = sign_headers(method, url, dict(headers or {}), self._access_key,
                              self._secret_key, self._region, payload_hash)  # fmt: skip
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.request(method, url, headers=signed, content=body)
        if response.status_code >= 300:
            raise _refusal(response)
        return response

    def presign(
        self, method: str, base_url: str, path: str, query: str = "", expires_s: int = 3600
    ) -> str:
        """A presigned URL for the browser to call S3 itself at ``base_url`` (the address the
        browser reached the console at: the signature covers its Host)."""
        url = base_url.rstrip("/") + path + (f"?{query}" if query else "")
        return presign_url(method, url, self._access_key, self._secret_key, expires_s,
                           self._region)  # fmt: skip

    async def list_buckets(self) -> list[BucketEntry]:
        root = SafeElementTree.fromstring((await self.request("GET", "/")).content)
        return [
            BucketEntry(child_text(bucket, "Name"), child_text(bucket, "CreationDate"))
            for bucket in root.iter(f"{S3_NS}Bucket")
        ]

    async def create_bucket(self, name: str) -> None:
        await self.request("PUT", bucket_path(name))

    async def delete_bucket(self, name: str) -> None:
        await self.request("DELETE", bucket_path(name))


def bucket_path(bucket: str, key: str | None = None) -> str:
    """The encoded path of a bucket (or an object): every character of the name is encoded
    but the unreserved ones, so a name typed with '/' or '?' reaches S3 as one name, and S3
    decides whether it is valid."""
    path = "/" + quote(bucket, safe="-_.~")
    return path if key is None else f"{path}/{quote(key, safe='-_.~/')}"


def query_string(params: Mapping[str, str]) -> str:
    """``params`` encoded for a query (every reserved character escaped; '' values kept as
    bare names, as S3 subresources are written: ``versioning``, ``uploads``)."""
    return "&".join(
        quote(name, safe="-_.~") + (f"={quote(value, safe='-_.~')}" if value else "")
        for name, value in params.items()
    )


def child_text(element: ElementTree.Element, name: str) -> str:
    """The text of ``element``'s S3-namespaced child ``name`` ('' if absent or empty)."""
    found = element.find(f"{S3_NS}{name}")
    return (found.text or "") if found is not None else ""


def _refusal(response: httpx.Response) -> S3Refused:
    code, message = "HTTP" + str(response.status_code), response.reason_phrase
    try:
        root = SafeElementTree.fromstring(response.content)
    except ElementTree.ParseError:
        return S3Refused(response.status_code, code, message)
    return S3Refused(
        response.status_code,
        root.findtext("Code") or code,
        root.findtext("Message") or message,
    )
