"""Randomized: two sites put, lock, hold, unhold and delete versions while their link comes and
goes (a random part of the other's log at a time), then catch up.

They must end converged (same versions, same lock state, same Merkle root), equal to what an
independent model computes from the union of their logs (in the spirit of
tests/integration/lww_model.py), and no version whose lock still forbids its removal may be
missing. The model: a version is present iff it was written and either never deleted for good,
or its lock state merged from every lock change (storage/lock_state.py ``merge``) forbids that
delete at the delete's own HLC wall time.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from storage.hlc import LOGICAL_BITS, wall_clock_ms
from storage.lock_state import LockState, from_json, merge
from storage.lww import Stamp
from storage.manifest import decode
from storage.store import Store
from storage.sync.feed import Change
from tests.unit.storage.stores import put_object, run_with_two_stores, site_of
from tests.unit.storage.sync.locking import (
    DAY_MS,
    Edit,
    compliance,
    get_lock,
    governance,
    hold,
    set_lock,
    site_state,
    unhold,
)
from tests.unit.storage.sync.test_apply import SKEW_MS, replicate

BUCKET = "backups"
KEYS = ("a", "b", "c")
STEPS = 70

Version = tuple[str, str, str]


async def pull_some(source: Store, target: Store, rng: random.Random) -> None:
    """A random prefix of what ``target`` has not pulled from ``source`` yet: a link that
    breaks in the middle of a catch-up."""
    src, dst = await site_of(source), await site_of(target)
    cursor = await dst.get_cursor(source.node_id, "pull")
    changes = await src.changes_after(cursor, 1000, exclude_origin=target.node_id)
    if not changes:
        return
    changes = changes[: rng.randint(1, len(changes))]
    digests = [c.blake3 for ch in changes if ch.manifest for c in decode(ch.manifest).chunks]
    for digest in await dst.missing_chunks(digests):
        await dst.store_chunk(await src.read_chunk_by_hash(digest) or b"")
    await dst.apply_remote(source.node_id, changes, changes[-1].seq, SKEW_MS)


async def versions_of(store: Store) -> list[Version]:
    page = await store.list_versions(BUCKET, "", "", "", "", 1000)
    return [(BUCKET, e.key, e.version_id) for e in page.entries if not e.is_delete_marker]


def random_edit(rng: random.Random, now: int) -> Edit:
    return rng.choice(
        [
            compliance(now + DAY_MS),
            compliance(now - 1),  # already expired: does not protect
            governance(now + DAY_MS),
            governance(None),  # removed (a bypassing caller)
            hold,
            unhold,
            unhold,
        ]
    )


async def random_step(rng: random.Random, site: Store, other: Store) -> None:
    roll = rng.random()
    now = wall_clock_ms()
    held = await versions_of(site)
    if roll < 0.25 or not held:
        await put_object(site, BUCKET, rng.choice(KEYS), rng.randbytes(rng.randint(1, 3000)))
    elif roll < 0.5:
        await set_lock(site, *rng.choice(held), random_edit(rng, now))
    elif roll < 0.65:
        version = rng.choice(held)
        state = await get_lock(site, *version)
        if state is None or state.may_delete(now):  # what S3 on this site allows
            await site.delete_object(*version)
    elif roll < 0.7:
        await site.delete_object(BUCKET, rng.choice(KEYS))  # a delete marker
    else:
        await pull_some(other, site, rng)


def expected_versions(changes: list[Change]) -> tuple[set[Version], dict[Version, LockState]]:
    """Present versions and merged lock states, from the union of the logs alone."""
    written: set[Version] = set()
    deletes: dict[Version, tuple[Stamp, bool]] = {}
    locks: dict[Version, LockState] = {}
    for change in changes:
        assert change.key is not None or change.op.startswith("bucket.")
        version = (change.bucket, change.key or "", change.version_id or "")
        lock = (change.payload or {}).get("lock")
        if lock is not None:
            locks[version] = merge(locks.get(version, LockState()), from_json(lock))
        if change.op == "object.put":
            written.add(version)
        elif change.op == "version.delete":
            stamp = Stamp(change.hlc, change.origin)
            bypass = (change.payload or {}).get("bypass_governance") is True
            deletes[version] = max(deletes.get(version, (stamp, bypass)), (stamp, bypass))
    present = set()
    for version in written:
        delete = deletes.get(version)
        state = locks.get(version)
        if delete is None or (
            state is not None
            and not state.may_delete(delete[0].hlc >> LOGICAL_BITS, bypass_governance=delete[1])
        ):
            present.add(version)
    return present, locks


@pytest.mark.parametrize("seed", range(8))
def test_random_lock_and_delete_exchanges_converge_and_lose_no_locked_version(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)

    async def body(a: Store, b: Store) -> None:
        await a.create_bucket(BUCKET, "owner")
        await a.set_versioning(BUCKET, "Enabled")
        await replicate(a, b)
        for _ in range(STEPS):
            site, other = (a, b) if rng.random() < 0.5 else (b, a)
            await random_step(rng, site, other)
        while sum(await replicate(a, b)) + sum(await replicate(b, a)):
            pass

        state_a, state_b = await site_state(a), await site_state(b)
        assert state_a == state_b
        union = {
            (c.origin, c.hlc): c
            for store in (a, b)
            for c in await (await site_of(store)).changes_after(0, 100_000, None)
        }
        present, merged = expected_versions(list(union.values()))
        for store in (a, b):
            assert set(await versions_of(store)) == present
            for version, lock in merged.items():
                assert await get_lock(store, *version) == lock
        now = wall_clock_ms()
        protected = {v for v, lock in merged.items() if not lock.may_delete(now)}
        assert protected <= present  # nothing still locked was lost
        assert protected, "the workload should leave some version locked"

    run_with_two_stores(body, tmp_path)
