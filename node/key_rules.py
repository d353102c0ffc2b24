"""What a new access key may be: the rules ``lakenode keys create`` (node/cli/keys.py) and the
console's Keys page (node/console/keys.py) share, so that both refuse the same keys with the
same words before anything is stored (storage/keys.py then checks names and secrets again).
"""

from __future__ import annotations

from collections.abc import Iterable

from api.errors import S3Error
from api.policy import parse_policy
from storage import keys


class BadKeyRequest(ValueError):
    """A key request that cannot be stored; ``field`` names the input that is wrong (the
    CLI's option, the console's form field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def checked_policy(text: str) -> str:
    """The identity policy to store, once parse_policy accepts it: what the node will
    enforce must be what it can read."""
    try:
        parse_policy(text)
    except S3Error as exc:
        raise BadKeyRequest("policy", exc.message) from exc
    return text


def new_access_key(
    access_key: str | None,
    secret_key: str | None,
    *,
    read_only: bool = False,
    buckets: Iterable[str] = (),
    policy: str | None = None,
    replication: bool = False,
) -> keys.AccessKey:
    """The key to create: a generated access key and secret where none is given, the policy
    (None: none) checked, the bucket limits without repeats (in the order given). The access
    key's form and the secret's length are checked by storage/keys.py create_key."""
    generated_access, generated_secret = keys.generate_pair()
    return keys.AccessKey(
        generated_access if access_key is None else access_key,
        generated_secret if secret_key is None else secret_key,
        read_only=read_only,
        buckets=tuple(dict.fromkeys(bucket for bucket in buckets if bucket)),
        policy="" if policy is None else checked_policy(policy),
        replication=replication,
    )
