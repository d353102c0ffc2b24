"""Object lock on a Store (``store.object_locks``): retention, legal hold, bucket configuration.

Thin pass-throughs the S3 handlers (api/object_lock.py) call: the decisions are the
mutations' (storage/lock_mutations.py), taken inside the commit transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage import locks
from storage.errors import NoSuchConfiguration
from storage.lock_mutations import (
    BucketLock,
    PutLegalHold,
    PutLockConfiguration,
    PutRetention,
    bucket_lock,
    get_version_lock,
)
from storage.lock_state import LockState, Mode

if TYPE_CHECKING:
    from storage.store import Store


# How long "object lock is not enabled on this bucket" is believed without asking again (a
# bucket enabled on another site shows lock headers within this time; enforcement never
# depends on it: deletes are checked inside the commit).
NOT_ENABLED_TTL_S = 1.0


class ObjectLocks:
    """A store's object lock calls."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Buckets known to have lock enabled (it is never disabled) and, with when they were
        # read, those known not to: the GET/HEAD hot path asks for no lock state in a bucket
        # without lock, so reads of ordinary buckets cost no extra query.
        self._enabled: set[str] = set()
        self._not_enabled: dict[str, tuple[float, int]] = {}  # (checked at, bucket epoch)

    async def configuration(self, bucket: str) -> BucketLock:
        """The bucket's lock configuration; NoSuchConfiguration if lock is not enabled."""
        found = await self._store.query(bucket_lock, bucket)
        if found is None:
            raise NoSuchConfiguration(f"{bucket} has no object lock configuration")
        return found

    async def enabled(self, bucket: str) -> bool:
        enabled = await self._store.query(bucket_lock, bucket) is not None
        if enabled:
            self._enabled.add(bucket)
        return enabled

    async def may_be_locked(self, bucket: str) -> bool:
        """Might versions of ``bucket`` have lock state? (cached; see NOT_ENABLED_TTL_S)"""
        if bucket in self._enabled:
            return True
        now = self._store.time_source.monotonic()
        epoch = self._store.bucket_epoch  # moves when any worker of the node enables lock
        checked = self._not_enabled.get(bucket)
        if checked is not None and checked[1] == epoch and now - checked[0] < NOT_ENABLED_TTL_S:
            return False
        if await self.enabled(bucket):
            self._not_enabled.pop(bucket, None)
            return True
        self._not_enabled[bucket] = (now, epoch)
        return False

    async def put_configuration(self, bucket: str, config: BucketLock) -> None:
        await self._store.commit(PutLockConfiguration(bucket, config))
        self._enabled.add(bucket)
        self._not_enabled.pop(bucket, None)

    async def version_lock(
        self, bucket: str, key: str, version_id: str | None
    ) -> tuple[str, LockState | None]:
        """(version id, lock state) for Get{ObjectRetention,ObjectLegalHold}."""
        return await self._store.query(get_version_lock, bucket, key, version_id)

    async def state(self, bucket: str, key: str, version_id: str) -> LockState | None:
        """A version's lock state as stored (HEAD/GET headers); None if it never had one."""
        if not await self.may_be_locked(bucket):
            return None
        return await self._store.query(locks.get_lock, bucket, key, version_id)

    async def put_retention(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        mode: Mode | None,
        until_ms: int | None,
        bypass_governance: bool,
    ) -> str:
        return await self._store.commit(
            PutRetention(bucket, key, version_id, mode, until_ms, bypass_governance)
        )

    async def put_legal_hold(self, bucket: str, key: str, version_id: str | None, on: bool) -> str:
        return await self._store.commit(PutLegalHold(bucket, key, version_id, on))
