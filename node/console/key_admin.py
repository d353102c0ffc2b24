"""The Keys page's catalog work (node/console/keys.py): the admin operations of ``lakenode
keys``, run inside the node for the root key.

Keys live in the SQLite catalog (storage/keys.py), outside S3, so this is the one page that
changes state without an S3 request: the page checks that the session is the root key's
before calling anything here. Reads go to the store's reader connection and changes to its
writer connection (Store.change_keys), never on the event loop's thread; after a change the
key ring reloads at once, so a disabled key is refused from the next request on.

Secrets stay here: templates get :class:`KeyView`, which has none. The one secret that
leaves is a new key's, returned by :meth:`KeyAdmin.create` for the page that shows it once.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from node.console.web import ConsoleContext
from node.key_rules import BadKeyRequest, checked_policy, new_access_key
from replication.routes import StoreUnavailable
from storage import keys

if TYPE_CHECKING:
    from storage.store import Store

T = TypeVar("T")
BUCKET_SEPARATORS: Final = re.compile(r"[\s,]+")


class KeyChangeRefused(Exception):
    """A key change that was not made, with the HTTP status and the words to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class KeyView:
    """What the page shows of a key: everything but its secret."""

    access_key: str
    status: str
    read_only: bool
    buckets: tuple[str, ...]
    replication: bool
    policy: str  # indented JSON, "" for none
    created: str

    @classmethod
    def of(cls, key: keys.AccessKey) -> KeyView:
        return cls(key.access_key, key.status, key.read_only, key.buckets, key.replication,
                   _indented(key.policy), _when(key.created_ms))  # fmt: skip

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class KeyForm:
    """The create form as sent: what to make, and what to fill the form with again when it
    is refused (everything but a secret, which the form never has)."""

    access_key: str = ""
    read_only: bool = False
    buckets: str = ""
    replication: bool = False
    policy: str = ""

    @classmethod
    def of(cls, form: dict[str, str]) -> KeyForm:
        return cls(form.get("access_key", "").strip(), form.get("read_only") == "yes",
                   form.get("buckets", ""), form.get("replication") == "yes",
                   form.get("policy", ""))  # fmt: skip

    def bucket_names(self) -> list[str]:
        """The bucket limits, separated by commas or spaces."""
        return [name for name in BUCKET_SEPARATORS.split(self.buckets) if name]


@dataclass(frozen=True)
class CreatedKey:
    view: KeyView
    secret_key: str


class KeyAdmin:
    """Reads and changes the node's stored keys, then reloads the key ring."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx

    async def listed(self) -> list[KeyView]:
        return [KeyView.of(key) for key in await self._stored()]

    async def one(self, access_key: str) -> KeyView | None:
        found = [key for key in await self._stored() if key.access_key == access_key]
        return KeyView.of(found[0]) if found else None

    async def create(self, wanted: KeyForm) -> CreatedKey:
        if wanted.access_key == self.ctx.keyring.root_access_key:
            raise KeyChangeRefused(409, "That is the root key's access key: choose another.")
        try:
            key = new_access_key(
                wanted.access_key or None,
                None,  # always generated: the page shows it once
                read_only=wanted.read_only,
                buckets=wanted.bucket_names(),
                policy=wanted.policy if wanted.policy.strip() else None,
                replication=wanted.replication,
            )
        except BadKeyRequest as exc:
            raise KeyChangeRefused(400, f"The {exc.field} is not valid: {exc}") from exc
        created = await self._change(keys.create_key, key)
        return CreatedKey(KeyView.of(created), key.secret_key)

    async def set_status(self, access_key: str, status: str) -> None:
        await self._change(keys.set_status, access_key, status)

    async def set_policy(self, access_key: str, text: str) -> None:
        """Replace the key's identity policy; blank text removes it."""
        try:
            policy = checked_policy(text) if text.strip() else ""
        except BadKeyRequest as exc:
            raise KeyChangeRefused(400, f"The policy is not valid: {exc}") from exc
        await self._change(keys.set_policy, access_key, policy)

    async def delete(self, access_key: str) -> None:
        await self._change(keys.delete_key, access_key)

    async def _stored(self) -> list[keys.AccessKey]:
        return await self._store().list_keys()

    async def _change(self, change: Callable[..., T], *args: Any) -> T:
        store = self._store()
        try:
            done = await store.change_keys(change, *args)
        except keys.KeyError_ as exc:
            raise KeyChangeRefused(400, str(exc)) from exc
        except sqlite3.OperationalError as exc:  # the busy timeout ran out (a CLI change?)
            raise KeyChangeRefused(503, f"The catalog is busy: try again ({exc}).") from exc
        await self.ctx.keyring.refresh()  # the change applies from the next request on
        return done

    def _store(self) -> Store:
        if self.ctx.key_store is None:
            raise KeyChangeRefused(503, "This node gives the console no key catalog.")
        try:
            return self.ctx.key_store()
        except StoreUnavailable as exc:
            raise KeyChangeRefused(503, "The node's store is not open.") from exc


def _indented(policy: str) -> str:
    if not policy:
        return ""
    try:
        return json.dumps(json.loads(policy), indent=2)
    except ValueError:  # stored by an older node: show it as it is
        return policy


def _when(created_ms: int) -> str:
    return datetime.fromtimestamp(created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
