"""What the S3 API needs to know about its deployment (built by node/, read by handlers)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiSettings:
    region: str = "us-east-1"
    auth_enabled: bool = True
    max_object_size: int = 5 << 30
    domain: str | None = None
    root_access_key: str = ""
    sigv2_enabled: bool = True  # --sigv2: accept AWS Signature Version 2 (boto3's presigning)
    lifecycle_day_ms: int = 86_400_000  # --lifecycle-day-seconds (tests): x-amz-expiration's day


@functools.lru_cache(maxsize=1024)
def owner_id(access_key: str) -> str:
    """A stable 64-hex canonical user id for an access key (the Owner/ID S3 shows)."""
    return hashlib.sha256(b"lakenode-owner:" + access_key.encode()).hexdigest()
