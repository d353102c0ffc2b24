"""The per-request context every S3 handler receives."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.requests import Request

from api.keyring import Identity, KeyRing
from api.settings import ApiSettings
from api.sigv4 import AuthContext
from storage.manifest import Manifest
from storage.store import Store

if TYPE_CHECKING:
    from api.access import BucketAccessCache

# A version's x-amz-replication-status (None: no header); node/ answers it from the replication
# side of the store (storage/sync/site.py), which api/ does not import.
ReplicationStatus = Callable[[Manifest], Awaitable[str | None]]


async def no_replication_status(_manifest: Manifest) -> str | None:
    return None


@dataclass
class S3Context:
    request: Request
    request_id: str
    operation: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    auth: AuthContext | None
    settings: ApiSettings
    store: Store
    identity: Identity
    bucket_access: BucketAccessCache
    replication_status: ReplicationStatus = no_replication_status
    # Resolves ACL grantees' canonical ids; POST Object verifies its form's signature with it.
    keyring: KeyRing | None = None

    @property
    def headers(self) -> Headers:
        return self.request.headers

    @property
    def access_key(self) -> str:
        """Who is acting (the owner of what it creates); anonymous requests create nothing."""
        return self.identity.access_key or ""

    @property
    def resource(self) -> str:
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key is not None else f"/{self.bucket}"

    @property
    def bucket_name(self) -> str:
        assert self.bucket is not None
        return self.bucket

    @property
    def object_key(self) -> str:
        assert self.key is not None
        return self.key
