"""The bucket settings page's S3 calls, made as the signed-in key (node/console/s3_self.py).

Reads answer a :class:`BucketSettings`; each change is one S3 request, or a read and a write
where S3 only takes the whole document (lifecycle rules, tags). S3 decides everything: a
read-only key's change is refused by S3 (AccessDenied), not here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from node.console.s3_self import S3Refused, SelfS3, bucket_path
from node.console.settings_xml import (
    LifecycleRuleView,
    LockView,
    cors_rules,
    lifecycle_rules,
    lock_view,
    parse_document,
    pretty_json,
    pretty_xml,
    tag_set,
    tagging_document,
    versioning_status,
)

# What S3 answers for a setting that was never made: the page shows "none", not an error.
NOT_CONFIGURED: Final = frozenset(
    {
        "NoSuchLifecycleConfiguration",
        "NoSuchCORSConfiguration",
        "NoSuchBucketPolicy",
        "NoSuchTagSet",
        "ObjectLockConfigurationNotFoundError",
    }
)


@dataclass
class BucketSettings:
    """What the page shows of a bucket; ``read_errors`` holds S3's refusal of a section."""

    versioning: str = "Unversioned"
    lock: LockView | None = None  # None: object lock is not enabled
    lifecycle: list[LifecycleRuleView] = field(default_factory=list)
    lifecycle_xml: str = ""
    cors: list[dict[str, Any]] = field(default_factory=list)
    policy: str = ""
    tags: list[tuple[str, str]] = field(default_factory=list)
    read_errors: dict[str, str] = field(default_factory=dict)


class BucketS3:
    """One bucket's configuration subresources, as one key sees them."""

    def __init__(self, s3: SelfS3, bucket: str) -> None:
        self.s3 = s3
        self.path = bucket_path(bucket)

    async def get(self, subresource: str) -> bytes | None:
        """The subresource's document, or None where S3 says it was never configured."""
        try:
            return (await self.s3.request("GET", self.path, subresource)).content
        except S3Refused as refused:
            if refused.code in NOT_CONFIGURED:
                return None
            raise

    async def put(self, subresource: str, body: bytes, content_type: str) -> None:
        """PUT a document with its Content-MD5: AWS requires an integrity check on the
        configuration PUTs (lifecycle, CORS, tagging, object lock), and so does lakenode."""
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        headers = {"content-md5": md5, "content-type": content_type}
        await self.s3.request("PUT", self.path, subresource, body, headers)

    async def put_xml(self, subresource: str, body: bytes) -> None:
        await self.put(subresource, body, "application/xml")

    async def delete(self, subresource: str) -> None:
        await self.s3.request("DELETE", self.path, subresource)

    async def lifecycle_root(self) -> Any:
        body = await self.get("lifecycle")
        return None if body is None else parse_document(body)

    async def tags(self) -> list[tuple[str, str]]:
        body = await self.get("tagging")
        return [] if body is None else tag_set(parse_document(body))

    async def put_tags(self, tags: list[tuple[str, str]]) -> None:
        """The whole tag set; none left is DeleteBucketTagging (an empty TagSet is not
        a way AWS documents to remove them)."""
        if tags:
            await self.put_xml("tagging", tagging_document(tags))
        else:
            await self.delete("tagging")


async def read_settings(bucket: BucketS3) -> BucketSettings:
    """Every section, read at once; versioning first decides whether the bucket can be read
    at all (its S3Refused, NoSuchBucket or AccessDenied, is the page's error)."""
    answer = await bucket.s3.request("GET", bucket.path, "versioning")
    try:
        settings = BucketSettings(versioning=versioning_status(answer.content))
    except (ElementTree.ParseError, ValueError) as error:
        raise S3Refused(502, "BadAnswer", f"S3's answer could not be read: {error}") from error
    readers: dict[str, Callable[[], Awaitable[None]]] = {
        "object-lock": lambda: _read_lock(bucket, settings),
        "lifecycle": lambda: _read_lifecycle(bucket, settings),
        "cors": lambda: _read_cors(bucket, settings),
        "policy": lambda: _read_policy(bucket, settings),
        "tags": lambda: _read_tags(bucket, settings),
    }
    await asyncio.gather(*(_section(name, read, settings) for name, read in readers.items()))
    return settings


async def _section(
    name: str, read: Callable[[], Awaitable[None]], settings: BucketSettings
) -> None:
    try:
        await read()
    except S3Refused as refused:
        settings.read_errors[name] = str(refused)
    except (ElementTree.ParseError, ValueError) as error:  # defusedxml's refusals are ValueErrors
        settings.read_errors[name] = f"S3's answer could not be read: {error}"


async def _read_lock(bucket: BucketS3, settings: BucketSettings) -> None:
    body = await bucket.get("object-lock")
    settings.lock = None if body is None else lock_view(body)


async def _read_lifecycle(bucket: BucketS3, settings: BucketSettings) -> None:
    body = await bucket.get("lifecycle")
    if body is not None:
        settings.lifecycle = lifecycle_rules(parse_document(body))
        settings.lifecycle_xml = pretty_xml(body)


async def _read_cors(bucket: BucketS3, settings: BucketSettings) -> None:
    body = await bucket.get("cors")
    settings.cors = [] if body is None else cors_rules(parse_document(body))


async def _read_policy(bucket: BucketS3, settings: BucketSettings) -> None:
    body = await bucket.get("policy")
    settings.policy = "" if body is None else pretty_json(body.decode("utf-8", "replace"))


async def _read_tags(bucket: BucketS3, settings: BucketSettings) -> None:
    settings.tags = await bucket.tags()
