"""storage/lock_mutations.py on a real store with a manual clock: S3's lock rules in the commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.clock import ManualClock
from storage.errors import (
    InvalidBucketState,
    LockNotEnabled,
    LockOnDeleteMarker,
    NoSuchKey,
    NoSuchVersion,
    ObjectLocked,
)
from storage.hlc import LOGICAL_MAX, Timestamp
from storage.lock_mutations import (
    DAY_MS,
    BucketLock,
    LockRequest,
    PutLockConfiguration,
    next_stamp,
    parse_bucket_lock,
    request_from_upload,
)
from storage.store import Store, StoreConfig
from tests.unit.storage.stores import put_object

START_MS = 1_800_000_000_000


def run_locked(test: Callable[[Store, ManualClock], Awaitable[None]], data_dir: Path) -> None:
    """A store on a manual clock with bucket "b" created with object lock enabled."""
    clock = ManualClock(START_MS)

    async def main() -> None:
        store = await Store.open(StoreConfig(data_dir, time_source=clock))
        try:
            await store.create_bucket("b", "owner", object_lock=True)
            await test(store, clock)
        finally:
            await store.close()

    asyncio.run(main())


async def _locked_put(store: Store, key: str, lock: LockRequest) -> str:
    writer = await store.begin_object("b", key, 1 << 20)
    await writer.write(b"data")
    await writer.finish()
    return (await writer.commit([("content-type", "x/y")], lock=lock)).version_id


async def _changes(store: Store) -> list[tuple[str, str | None]]:
    def read(conn: object) -> list[tuple[str, str | None]]:
        rows = conn.execute("SELECT op, payload FROM changes ORDER BY seq")  # type: ignore[attr-defined]
        return [(str(op), payload) for op, payload in rows]

    return await store.query(read)


def test_a_locked_bucket_is_versioned_and_logged_in_one_commit(tmp_path: Path) -> None:
    async def test(store: Store, _clock: ManualClock) -> None:
        assert (await store.get_bucket("b")).versioning == "Enabled"
        assert await store.object_locks.configuration("b") == BucketLock()
        ops = [op for op, _payload in await _changes(store)]
        assert ops == ["bucket.create", "bucket.versioning", "bucket.object-lock"]
        await put_object(store, "b", "k", b"x")  # the next stamp is fresh (no UNIQUE clash)
        with pytest.raises(InvalidBucketState):
            await store.set_versioning("b", "Suspended")

    run_locked(test, tmp_path)


def test_compliance_blocks_deletes_until_it_expires_and_is_only_extended(tmp_path: Path) -> None:
    async def test(store: Store, clock: ManualClock) -> None:
        version = await _locked_put(store, "k", LockRequest("COMPLIANCE", START_MS + 10_000))
        payload = json.loads((await _changes(store))[-1][1] or "{}")
        assert payload["lock"] == {"compliance_until_ms": START_MS + 10_000}
        with pytest.raises(ObjectLocked):
            await store.delete_object("b", "k", version, bypass_governance=True)
        for mode, until in (("COMPLIANCE", START_MS + 5_000), ("GOVERNANCE", START_MS + 20_000)):
            with pytest.raises(ObjectLocked):
                await store.object_locks.put_retention("b", "k", version, mode, until, True)  # type: ignore[arg-type]
        with pytest.raises(ObjectLocked):
            await store.object_locks.put_retention("b", "k", version, None, None, True)
        await store.object_locks.put_retention(
            "b", "k", None, "COMPLIANCE", START_MS + 20_000, False
        )
        _id, state = await store.object_locks.version_lock("b", "k", version)
        assert state is not None and state.compliance_until_ms == START_MS + 20_000
        assert (await _changes(store))[-1][0] == "version.lock"
        marker = await store.delete_object("b", "k")  # no version id: just a delete marker
        assert marker.delete_marker
        clock.advance(15)
        with pytest.raises(ObjectLocked):
            await store.delete_object("b", "k", version)
        clock.advance(10)
        await store.delete_object("b", "k", version)
        with pytest.raises(NoSuchVersion):
            await store.object_locks.version_lock("b", "k", version)

    run_locked(test, tmp_path)


def test_governance_yields_only_to_bypass_and_holds_to_nobody(tmp_path: Path) -> None:
    async def test(store: Store, _clock: ManualClock) -> None:
        version = await _locked_put(store, "k", LockRequest("GOVERNANCE", START_MS + 10_000))
        locks = store.object_locks
        with pytest.raises(ObjectLocked):
            await store.delete_object("b", "k", version)
        with pytest.raises(ObjectLocked):
            await locks.put_retention("b", "k", version, "GOVERNANCE", START_MS + 1, False)
        with pytest.raises(ObjectLocked):  # to COMPLIANCE, even for longer: the bypass only
            await locks.put_retention("b", "k", version, "COMPLIANCE", START_MS + 99_000, False)
        await locks.put_retention("b", "k", version, "GOVERNANCE", START_MS + 30_000, False)
        await locks.put_legal_hold("b", "k", version, True)
        with pytest.raises(ObjectLocked):
            await store.delete_object("b", "k", version, bypass_governance=True)
        await locks.put_legal_hold("b", "k", version, False)
        await store.delete_object("b", "k", version, bypass_governance=True)
        payload = json.loads((await _changes(store))[-1][1] or "{}")
        assert payload["bypass_governance"] is True

    run_locked(test, tmp_path)


def test_the_default_retention_applies_at_creation(tmp_path: Path) -> None:
    async def test(store: Store, _clock: ManualClock) -> None:
        await store.object_locks.put_configuration("b", BucketLock("GOVERNANCE", days=2))
        written = await put_object(store, "b", "k", b"x", tags=(("t", "v"),))
        _id, state = await store.object_locks.version_lock("b", "k", written.version_id)
        assert state is not None and state.governance_until_ms == START_MS + 2 * DAY_MS
        payload = json.loads((await _changes(store))[-1][1] or "{}")
        assert set(payload) == {"tags", "lock"}
        own = await _locked_put(store, "k2", LockRequest("COMPLIANCE", START_MS + 5))
        _id, state = await store.object_locks.version_lock("b", "k2", own)
        assert state is not None and state.retention() is not None
        assert state.governance is None and state.compliance_until_ms == START_MS + 5

    run_locked(test, tmp_path)


def test_locks_are_refused_where_s3_refuses_them(tmp_path: Path) -> None:
    async def test(store: Store, _clock: ManualClock) -> None:
        with pytest.raises(NoSuchKey):
            await store.object_locks.put_legal_hold("b", "k", None, True)
        await put_object(store, "b", "k", b"x")
        marker = await store.delete_object("b", "k")
        with pytest.raises(LockOnDeleteMarker):
            await store.object_locks.put_legal_hold("b", "k", marker.version_id, True)
        with pytest.raises(NoSuchVersion):
            await store.object_locks.put_legal_hold("b", "k", "nope", True)
        await store.create_bucket("plain", "owner")
        with pytest.raises(InvalidBucketState):
            await store.object_locks.put_configuration("plain", BucketLock())
        with pytest.raises(LockNotEnabled):
            await store.object_locks.put_legal_hold("plain", "k", None, True)
        writer = await store.begin_object("plain", "k", 1 << 20)
        await writer.finish()
        with pytest.raises(LockNotEnabled):
            await writer.commit([], lock=LockRequest(legal_hold=True))
        await store.set_versioning("plain", "Enabled")
        await store.object_locks.put_configuration("plain", BucketLock("COMPLIANCE", years=1))
        assert (await store.object_locks.configuration("plain")).years == 1

    run_locked(test, tmp_path)


def test_a_multipart_upload_keeps_its_lock_until_completion(tmp_path: Path) -> None:
    async def test(store: Store, _clock: ManualClock) -> None:
        lock = LockRequest("COMPLIANCE", START_MS + 1_000, legal_hold=True)
        upload = await store.multipart.create_upload("b", "k", lock.upload_headers(), "owner")
        writer = await store.multipart.begin_part(upload, 1 << 20)
        await writer.write(b"part")
        await writer.finish()
        part = await writer.commit_part(upload, 1)
        done = await store.multipart.complete_upload(upload, [(1, part.etag)])
        assert not isinstance(done, type(None))
        version = done.version_id  # type: ignore[union-attr]
        _id, state = await store.object_locks.version_lock("b", "k", version)
        assert state is not None and state.legal_hold
        assert state.compliance_until_ms == START_MS + 1_000
        head = await store.head_object("b", "k", version)
        assert not any(name.startswith("x-lakenode-lock-") for name, _v in head.headers)

    run_locked(test, tmp_path)


def test_pure_parts() -> None:
    assert next_stamp(Timestamp(5, 1, "n")) == Timestamp(5, 2, "n")
    assert next_stamp(Timestamp(5, LOGICAL_MAX, "n")) == Timestamp(6, 0, "n")
    config = BucketLock("COMPLIANCE", years=2)
    assert parse_bucket_lock(config.dumps()) == config
    assert config.default_until(0) == 730 * DAY_MS
    assert parse_bucket_lock(BucketLock().dumps()) == BucketLock()
    request = LockRequest("GOVERNANCE", 42, legal_hold=True)
    assert request_from_upload((*request.upload_headers(), ("a", "b"))) == request
    assert request_from_upload((("a", "b"),)) is None


def test_reads_ask_for_lock_state_only_where_lock_may_be(tmp_path: Path) -> None:
    async def test(store: Store, clock: ManualClock) -> None:
        locks = store.object_locks
        assert await locks.may_be_locked("b")  # created with lock: known at once
        await store.create_bucket("plain", "owner")
        assert not await locks.may_be_locked("plain")
        await store.set_versioning("plain", "Enabled")
        await locks.put_configuration("plain", BucketLock())
        assert await locks.may_be_locked("plain")  # enabled here: no waiting
        await store.create_bucket("remote", "owner")
        await store.set_versioning("remote", "Enabled")
        assert not await locks.may_be_locked("remote")
        # Committed without the cache's own call (as a peer's change, or another worker's, is):
        # any bucket-wide commit moves Store.bucket_epoch, so the cache asks again at once.
        epoch = store.bucket_epoch
        await store.commit(PutLockConfiguration("remote", BucketLock()))
        assert store.bucket_epoch == epoch + 1
        assert await locks.may_be_locked("remote")

    run_locked(test, tmp_path)
