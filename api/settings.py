"""What the S3 API needs to know about its deployment (built by node/, read by handlers)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ApiSettings:
    region: str = "us-east-1"
    auth_enabled: bool = True
    # access key -> secret key
    credentials: Mapping[str, str] = field(default_factory=dict)
    max_object_size: int = 5 << 30
    domain: str | None = None
    root_access_key: str = ""


def owner_id(access_key: str) -> str:
    """A stable 64-hex canonical user id for an access key (the Owner/ID S3 shows)."""
    return hashlib.sha256(b"lakenode-owner:" + access_key.encode()).hexdigest()
