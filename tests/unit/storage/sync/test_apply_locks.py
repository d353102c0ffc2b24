"""Object lock across two real stores (storage/sync/apply_locks.py, storage/lock_deletes.py).

Method as in test_apply.py: changes move between stores in-process, in the orders a cut link
allows; a third site's deletes are built by hand. After each scenario both stores must hold
the same versions, the same lock state and the same Merkle root, and no locked version may
be missing from either.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from storage.hlc import pack, wall_clock_ms
from storage.lock_state import LockState
from storage.lww import Stamp
from storage.manifest import Manifest
from storage.store import Store
from storage.sync.apply import ReplicationError
from storage.sync.feed import Change
from tests.unit.storage.stores import put_object, read_all, run_with_two_stores, site_of
from tests.unit.storage.sync.locking import (
    DAY_MS,
    compliance,
    get_lock,
    governance,
    hold,
    lock_payload,
    set_lock,
    site_state,
    unhold,
)
from tests.unit.storage.sync.test_apply import SKEW_MS, replicate

BUCKET = "locked"


async def only_on_a(a: Store, b: Store, data: bytes) -> Manifest:
    """A versioned bucket on both sites and one version of key k that only a holds yet."""
    await a.create_bucket(BUCKET, "owner")
    await a.set_versioning(BUCKET, "Enabled")
    await replicate(a, b)
    return await put_object(a, BUCKET, "k", data)


async def versioned_pair(a: Store, b: Store) -> Manifest:
    """A versioned bucket on both sites and one version V of key k, held by both."""
    version = await only_on_a(a, b, b"backup data")
    await replicate(a, b)
    return version


async def not_pulled(a: Store, b: Store) -> list[Change]:
    """a's own changes that b has not pulled yet."""
    cursor = await (await site_of(b)).get_cursor(a.node_id, "pull")
    return await (await site_of(a)).changes_after(cursor, 100, b.node_id)


async def exchange(a: Store, b: Store) -> None:
    """Both ways until neither has anything new for the other."""
    while sum(await replicate(a, b)) + sum(await replicate(b, a)):
        pass


async def assert_converged(a: Store, b: Store) -> None:
    assert await site_state(a) == await site_state(b)


def delete_from_elsewhere(version: Manifest, *, bypass: bool = False, seq: int = 1) -> Change:
    """A version.delete made now on a third site (node-c)."""
    payload: dict[str, object] = {"kind": "OBJECT"}
    if bypass:
        payload["bypass_governance"] = True
    return Change(
        seq, pack(wall_clock_ms(), seq), "node-c", "version.delete", version.bucket,
        version.key, version.version_id, payload=payload,
    )  # fmt: skip


async def present(store: Store, version: Manifest) -> bool:
    page = await store.list_versions(version.bucket, "", "", "", "", 1000)
    return version.version_id in {entry.version_id for entry in page.entries}


def test_lock_state_merges_so_that_protection_never_decreases(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        now = wall_clock_ms()
        where = (BUCKET, "k", v.version_id)
        # Concurrently: a sets a COMPLIANCE date, b a later one and a legal hold.
        await set_lock(a, *where, compliance(now + DAY_MS))
        await set_lock(b, *where, compliance(now + 2 * DAY_MS))
        await set_lock(b, *where, hold)
        # a lifts "its" hold before knowing b's: a removal lifts only the holds it saw.
        await set_lock(a, *where, hold)
        await set_lock(a, *where, unhold)
        await exchange(a, b)
        for store in (a, b):
            state = await get_lock(store, *where)
            assert state is not None and state.legal_hold
            assert state.compliance_until_ms == now + 2 * DAY_MS
        await assert_converged(a, b)
        # Once a knows every hold, its removal lifts them on both sites.
        await set_lock(a, *where, unhold)
        await exchange(a, b)
        for store in (a, b):
            state = await get_lock(store, *where)
            assert state is not None and not state.legal_hold
            assert state.compliance_until_ms == now + 2 * DAY_MS  # never shortened
        await assert_converged(a, b)

    run_with_two_stores(body, tmp_path)


@pytest.mark.parametrize("first", ["lock reaches b first", "delete reaches a first"])
def test_lock_then_cut_then_delete_on_the_other_site_loses_nothing(
    tmp_path: Path, first: str
) -> None:
    """Acceptance 3: a lock set on A, the link cut, a delete of that version on B (which did
    not have the lock yet): the version comes back on B and stays on A, in either order."""

    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        await set_lock(a, BUCKET, "k", v.version_id, compliance(wall_clock_ms() + DAY_MS))
        await b.delete_object(BUCKET, "k", v.version_id)  # b does not know the lock
        assert not await present(b, v)
        if first == "lock reaches b first":
            await replicate(a, b)
            assert await present(b, v)  # back from the lock change's manifest
            _applied, refused = await replicate(b, a)
        else:
            _applied, refused = await replicate(b, a)
            await replicate(a, b)
        assert refused == 1  # a refused b's delete: counted as a conflict
        await exchange(a, b)
        for store in (a, b):
            assert await present(store, v)
            back = await store.head_object(BUCKET, "k")
            assert back.version_id == v.version_id  # latest again: promotion is right
            assert await read_all(store, back) == b"backup data"
        await assert_converged(a, b)
        conflicts = await a.query(
            lambda conn: conn.execute("SELECT origin, manifest FROM conflicts").fetchall()
        )
        assert conflicts == [("node-b", None)]

    run_with_two_stores(body, tmp_path)


def test_a_delete_reaching_a_site_that_knows_the_lock_is_refused(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        await set_lock(a, BUCKET, "k", v.version_id, compliance(wall_clock_ms() + DAY_MS))
        await replicate(a, b)
        result = await (await site_of(b)).apply_remote(
            "node-c", [delete_from_elsewhere(v)], 1, SKEW_MS
        )
        assert (result.applied, result.conflicts) == (1, 1)
        assert await present(b, v)

    run_with_two_stores(body, tmp_path)


def test_governance_refuses_a_delete_unless_it_was_bypassed(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        kept = await versioned_pair(a, b)
        bypassed = await put_object(a, BUCKET, "k2", b"other")
        until = wall_clock_ms() + DAY_MS
        for version in (kept, bypassed):
            await set_lock(a, BUCKET, version.key, version.version_id, governance(until))
        await replicate(a, b)
        changes = [delete_from_elsewhere(kept), delete_from_elsewhere(bypassed, bypass=True, seq=2)]
        result = await (await site_of(b)).apply_remote("node-c", changes, 2, SKEW_MS)
        assert (result.applied, result.conflicts) == (2, 1)
        assert await present(b, kept) and not await present(b, bypassed)
        # A snapshot of b keeps each delete's flag: the lock decides with it on a new site.
        page, _end = await (await site_of(b)).snapshot_page(None, 100)
        flags = {c.key: c.payload for c in page if c.op == "version.delete"}
        assert flags == {
            "k": {"kind": "UNKNOWN"},
            "k2": {"kind": "UNKNOWN", "bypass_governance": True},
        }

    run_with_two_stores(body, tmp_path)


def test_an_expired_retention_lets_the_delete_through(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        await set_lock(a, BUCKET, "k", v.version_id, compliance(wall_clock_ms() - 1))
        await replicate(a, b)
        result = await (await site_of(b)).apply_remote(
            "node-c", [delete_from_elsewhere(v)], 1, SKEW_MS
        )
        assert result.conflicts == 0 and not await present(b, v)

    run_with_two_stores(body, tmp_path)


@pytest.mark.parametrize("lift_on", ["a", "b"])
def test_a_refused_delete_waits_and_takes_effect_once_the_hold_is_lifted(
    tmp_path: Path, lift_on: str
) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        await set_lock(a, BUCKET, "k", v.version_id, hold)
        await b.delete_object(BUCKET, "k", v.version_id)
        await exchange(a, b)
        assert await present(a, v) and await present(b, v)
        await assert_converged(a, b)
        await set_lock(a if lift_on == "a" else b, BUCKET, "k", v.version_id, unhold)
        await exchange(a, b)
        assert not await present(a, v) and not await present(b, v)
        await assert_converged(a, b)

    run_with_two_stores(body, tmp_path)


def test_a_lock_written_with_the_version_rides_in_its_put(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await only_on_a(a, b, b"written locked")
        until = wall_clock_ms() + DAY_MS
        site_a, site_b = await site_of(a), await site_of(b)
        changes = await not_pulled(a, b)
        assert [c.op for c in changes] == ["object.put"]
        locked = dataclasses.replace(changes[0], payload=lock_payload(LockState(until)))
        await site_b.store_chunk(await site_a.read_chunk_by_hash(v.chunks[0].blake3) or b"")
        await site_b.apply_remote("node-a", [locked], locked.seq, SKEW_MS)
        assert await get_lock(b, BUCKET, "k", v.version_id) == LockState(until)
        result = await site_b.apply_remote("node-c", [delete_from_elsewhere(v)], 1, SKEW_MS)
        assert result.conflicts == 1 and await present(b, v)
        # A snapshot of b (bootstrap) says the same: the refused delete, then the version
        # with its lock in its payload (same stamp: one change, as it was made).
        page, _end = await site_b.snapshot_page(None, 100)
        entry = [(c.op, c.payload) for c in page if c.key == "k"]
        assert entry == [
            ("version.delete", {"kind": "UNKNOWN"}),
            ("object.put", lock_payload(LockState(until))),
        ]

    run_with_two_stores(body, tmp_path)


def test_a_version_put_after_its_refused_delete_still_arrives(tmp_path: Path) -> None:
    """b learns of the delete and the lock before the version itself."""

    async def body(a: Store, b: Store) -> None:
        v = await only_on_a(a, b, b"late")
        site_b = await site_of(b)
        lock = await set_lock(a, BUCKET, "k", v.version_id, hold)
        put, lock_change = await not_pulled(a, b)
        no_manifest = dataclasses.replace(lock_change, manifest=None)
        await site_b.apply_remote("node-c", [delete_from_elsewhere(v)], 1, SKEW_MS)
        await site_b.apply_remote("node-a", [no_manifest], put.seq - 1, SKEW_MS)
        assert await get_lock(b, BUCKET, "k", v.version_id) == lock and not await present(b, v)
        await replicate(a, b)  # the put: the delete it meets is refused by the lock
        assert await present(b, v)
        assert put.op == "object.put"

    run_with_two_stores(body, tmp_path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"payload": {"lock": {"compliance_until_ms": "soon"}}}, "bad lock"),
        ({"payload": {"lock": {}, "extra": 1}}, "bad lock"),
        ({"payload": None}, "bad lock"),
        ({"payload": {"lock": {"compliance_until_ms": 1 << 64}}}, "bad lock"),
        ({"version_id": "someone-else"}, "manifest does not name"),
    ],
)
def test_a_malformed_lock_change_is_refused_and_nothing_applied(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        await set_lock(a, BUCKET, "k", v.version_id, hold)
        site_b = await site_of(b)
        cursor = await site_b.get_cursor("node-a", "pull")
        (good,) = await not_pulled(a, b)
        bad = dataclasses.replace(good, **change)  # type: ignore[arg-type]
        with pytest.raises(ReplicationError, match=problem):
            await site_b.apply_remote("node-a", [bad], bad.seq, SKEW_MS)
        assert await get_lock(b, BUCKET, "k", v.version_id) is None
        assert await site_b.get_cursor("node-a", "pull") == cursor

    run_with_two_stores(body, tmp_path)


def test_the_merged_state_and_its_stamp_are_what_relays(tmp_path: Path) -> None:
    async def body(a: Store, b: Store) -> None:
        v = await versioned_pair(a, b)
        state = await set_lock(a, BUCKET, "k", v.version_id, hold)
        await replicate(a, b)
        relayed = await (await site_of(b)).changes_after(0, 100, exclude_origin=None)
        (lock,) = [c for c in relayed if c.op == "version.lock"]
        assert lock.payload == lock_payload(state) and lock.manifest is not None
        assert state.hold_set == {"node-a": lock.hlc}
        assert Stamp(lock.hlc, lock.origin) > Stamp(v.hlc, v.origin)

    run_with_two_stores(body, tmp_path)
