"""A lifecycle pass on real stores (storage/ops/lifecycle.py): what it expires, what it leaves,
locks, the bound and the cursor it resumes from, and which of two sites acts.

Method: stores on a ManualClock (days pass when the test says so), rules written as the API
stores them (storage/lifecycle.py's JSON), a pass run in process; then the catalog is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from storage import locks
from storage.clock import ManualClock
from storage.commit import Outcome
from storage.hlc import Timestamp
from storage.lifecycle import DAY_MS, Filter, FilterForm, Lifecycle, Rule, after_days
from storage.lock_state import LockState
from storage.lww import Stamp
from storage.manifest import Kind
from storage.ops.lifecycle import PassSettings, run_pass
from storage.ops.lifecycle_actions import key_versions, read_state
from storage.store import Store
from tests.unit.storage.stores import put_object, put_part, run_with_two_stores
from tests.unit.storage.sync.test_apply import replicate
from tests.unit.storage.test_clock import START_MS, run_with_manual_clock

FAST = PassSettings(actions_per_s=0)  # no pacing in tests


def prefix_rule(rule_id: str, prefix: str, **actions: object) -> Rule:
    return Rule(rule_id, True, Filter(FilterForm.PREFIX, prefix=prefix), **actions)  # type: ignore[arg-type]


async def kinds(store: Store, key: str) -> list[Kind]:
    versions = await store.inspect(key_versions, "b", key)
    return [Kind[v.kind.name] for v in versions]


async def rules(store: Store, *rule_list: Rule) -> None:
    await store.put_bucket_document("b", "lifecycle", Lifecycle(tuple(rule_list)).dumps())


def test_current_versions_expire_by_prefix_and_nothing_else(tmp_path: Path) -> None:
    async def body(store: Store, clock: ManualClock) -> None:
        await rules(store, prefix_rule("logs", "logs/", expiration_days=1))
        for key in ("logs/a", "logs/b", "keep/c"):
            await put_object(store, "b", key, b"x")
        due_ms = after_days(START_MS, 1)  # the midnight after a day has passed
        clock.advance((due_ms - 1 - clock.wall_ms()) / 1000)
        assert (await run_pass(store, FAST)).actions == 0
        clock.advance(0.001)
        report = await run_pass(store, FAST)
        assert report.complete and report.actions == 2
        assert await kinds(store, "logs/a") == [Kind.TOMBSTONE]  # unversioned: a tombstone
        assert await kinds(store, "keep/c") == [Kind.OBJECT]
        state = await store.inspect(read_state)
        assert state["objects_expired"] == 2 and state["cursor"] is None
        assert state["last_pass_finished_ms"] == clock.wall_ms()
        assert (await run_pass(store, FAST)).actions == 0  # nothing twice

    run_with_manual_clock(body, tmp_path)


def test_versions_markers_and_uploads_and_a_locked_version(tmp_path: Path) -> None:
    async def body(store: Store, clock: ManualClock) -> None:
        await store.set_versioning("b", "Enabled")
        await rules(
            store,
            prefix_rule("old", "k", noncurrent_days=1, newer_noncurrent_versions=1),
            prefix_rule("gone", "gone", noncurrent_days=1),
            prefix_rule("markers", "", expired_object_delete_marker=True),
            prefix_rule("mpu", "tmp/", abort_days=1),
        )
        versions = [await put_object(store, "b", "k", bytes([n])) for n in range(4)]
        await put_object(store, "b", "gone", b"x")
        await store.delete_object("b", "gone")
        stale = await put_part(store, "b", "tmp/upload", b"part")
        kept = await put_part(store, "b", "other/upload", b"part")
        locked = versions[0].version_id

        def lock(conn: object, stamp: Timestamp) -> Outcome[None]:
            state = LockState().with_compliance(START_MS + 100 * DAY_MS)
            locks.merge_lock(conn, "b", "k", locked, state, Stamp(stamp.pack(), stamp.node_id))  # type: ignore[arg-type]
            return Outcome(None)

        await store.commit(_Apply(lock))
        clock.advance(3 * DAY_MS / 1000)
        report = await run_pass(store, FAST)
        assert report.complete
        left = [v.version_id for v in await store.inspect(key_versions, "b", "k")]
        # Current v3 stays, v2 is the one newer noncurrent version kept, v1 expires, v0 is
        # locked: never expired.
        assert left == [versions[3].version_id, versions[2].version_id, locked]
        # "gone": the old version expired as noncurrent; the marker is removed once alone.
        assert await kinds(store, "gone") == [Kind.DELETE_MARKER]
        await run_pass(store, FAST)
        assert await kinds(store, "gone") == []
        uploads = await store.multipart.list_uploads("b", "", "", "", "", 100)
        assert [u.upload_id for u in uploads.uploads] == [kept.upload_id]
        assert stale.upload_id != kept.upload_id
        state = await store.inspect(read_state)
        assert state["uploads_aborted"] == 1 and state["delete_markers_removed"] == 1
        assert state["locked_skipped"] >= 1 and state["versions_expired"] == 3

    run_with_manual_clock(body, tmp_path)


class _Apply:
    """A one-off mutation from a function (test setup inside a commit)."""

    def __init__(self, function: Callable[[object, Timestamp], Outcome[None]]) -> None:
        self.function = function

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: object, stamp: Timestamp) -> Outcome[None]:
        return self.function(conn, stamp)


def test_a_bounded_pass_resumes_from_its_cursor(tmp_path: Path) -> None:
    async def body(store: Store, clock: ManualClock) -> None:
        await rules(store, prefix_rule("all", "", expiration_days=1))
        for n in range(10):
            await put_object(store, "b", f"k{n:02d}", b"x")
        clock.advance(2 * DAY_MS / 1000)
        bounded = PassSettings(max_actions=3, actions_per_s=0, keys_per_page=2)
        first = await run_pass(store, bounded)
        assert not first.complete and first.actions == 3
        cursor = (await store.inspect(read_state))["cursor"]
        assert cursor["bucket"] == "b" and cursor["key"] == "k02"
        second = await run_pass(store, bounded)
        assert second.resumed_from == ("b", "k02") and second.actions == 3
        while not (await run_pass(store, bounded)).complete:
            pass
        for n in range(10):
            assert await kinds(store, f"k{n:02d}") == [Kind.TOMBSTONE]
        state = await store.inspect(read_state)
        assert state["objects_expired"] == 10 and state["cursor"] is None

    run_with_manual_clock(body, tmp_path)


def test_each_site_expires_what_it_wrote_and_both_converge(tmp_path: Path) -> None:
    day_ms = 50

    async def body(a: Store, b: Store) -> None:
        await a.create_bucket("b", "owner")
        await a.set_versioning("b", "Enabled")
        await rules(a, prefix_rule("all", "", expiration_days=1))
        await replicate(a, b)
        await put_object(a, "b", "from-a", b"a")
        await put_object(b, "b", "from-b", b"b")
        await replicate(a, b)
        await replicate(b, a)
        await asyncio.sleep(3 * day_ms / 1000)
        settings = PassSettings(day_ms=day_ms, actions_per_s=0)
        on_a, on_b = await run_pass(a, settings), await run_pass(b, settings)
        assert (on_a.actions, on_b.actions) == (1, 1)
        assert await b.inspect(key_versions, "b", "from-a") != await a.inspect(
            key_versions, "b", "from-a"
        )
        await replicate(a, b)
        await replicate(b, a)
        for key in ("from-a", "from-b"):
            on_each = [await site.inspect(key_versions, "b", key) for site in (a, b)]
            assert on_each[0] == on_each[1]
            assert [v.kind.name for v in on_each[0]] == ["DELETE_MARKER", "OBJECT"]
        # Passes after convergence do nothing more on either site.
        assert (await run_pass(a, settings)).actions == (await run_pass(b, settings)).actions == 0

    run_with_two_stores(body, tmp_path)
