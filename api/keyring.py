"""Who may sign requests: the root key plus the keys in the store, reloaded while running.

The node polls the store's key generation (see node/app.py) and calls :meth:`KeyRing.replace`
when it moves, so a key created or disabled by ``lakenode keys`` takes effect within a
second; with several workers, once one worker has loaded a change every other loads it before
its next request (:attr:`KeyRing.behind`). A disabled key still has its signature checked
(so a wrong secret stays SignatureDoesNotMatch), then is refused with AccessDenied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from api.errors import S3Error
from api.settings import owner_id
from storage.keys import AccessKey


@dataclass(frozen=True)
class Identity:
    """The principal of a request."""

    access_key: str | None  # None: anonymous
    root: bool = False
    key: AccessKey | None = None  # the stored key (None for root and anonymous)

    @property
    def anonymous(self) -> bool:
        return self.access_key is None


ANONYMOUS = Identity(None)


async def _unchanged() -> bool:
    return False


def _never() -> bool:
    return False


class KeyRing:
    def __init__(self, root_access_key: str, root_secret_key: str) -> None:
        self.root_access_key = root_access_key
        self._root_secret = root_secret_key
        self._keys: dict[str, AccessKey] = {}
        self._by_owner_id = {owner_id(root_access_key): root_access_key}
        self.generation = -1
        # Set by the node: reload the keys now if they changed; True if they did.
        self.refresh: Callable[[], Awaitable[bool]] = _unchanged
        # Set by a node of several workers: another worker has loaded newer keys (cheap: read
        # before every request).
        self.behind: Callable[[], bool] = _never

    def replace(self, keys: list[AccessKey], generation: int) -> None:
        # The root key cannot be shadowed by a stored key of the same name.
        self._keys = {k.access_key: k for k in keys if k.access_key != self.root_access_key}
        self._by_owner_id = {owner_id(name): name for name in [*self._keys, self.root_access_key]}
        self.generation = generation

    def access_key_of(self, canonical_id: str) -> str | None:
        """The access key whose canonical user id this is (ACL grantees), None if unknown."""
        return self._by_owner_id.get(canonical_id)

    def stored_key(self, access_key: str) -> AccessKey | None:
        """A key of the key table (None for the root key and unknown keys)."""
        return self._keys.get(access_key)

    def secret_for(self, access_key: str) -> str | None:
        if access_key == self.root_access_key:
            return self._root_secret
        key = self._keys.get(access_key)
        return key.secret_key if key is not None else None

    def identity(self, access_key: str) -> Identity:
        """The identity of a request whose signature was verified with ``access_key``."""
        if access_key == self.root_access_key:
            return Identity(access_key, root=True)
        key = self._keys.get(access_key)
        if key is None:  # removed between verification and now
            raise S3Error(
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        if not key.active:
            raise S3Error("AccessDenied", "The access key is disabled.")
        return Identity(access_key, key=key)
