"""Write conditions: the pure rule (WriteCondition.check) and its enforcement inside the
group-commit transaction of a real store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.conditions import CONDITIONAL_HEADER, WriteCondition
from storage.errors import ConditionalConflict, NoSuchKey, PreconditionFailed
from storage.manifest import Kind, Manifest
from storage.store import Store
from tests.unit.storage.stores import put_object, read_all, run_with_store


def _version(kind: Kind, etag: str, hlc: int) -> Manifest:
    return Manifest(kind, "b", "k", f"v{hlc}", hlc, "n", 1, etag, 0, (), ())


def test_if_none_match_any() -> None:
    create = WriteCondition(if_none_match_any=True)
    create.check(None)
    create.check(_version(Kind.DELETE_MARKER, "", 1))
    create.check(_version(Kind.TOMBSTONE, "", 1))
    with pytest.raises(PreconditionFailed):
        create.check(_version(Kind.OBJECT, "e", 1))


def test_if_match() -> None:
    update = WriteCondition(if_match_etag="e")
    update.check(_version(Kind.OBJECT, "e", 1))
    with pytest.raises(PreconditionFailed):
        update.check(_version(Kind.OBJECT, "f", 1))
    with pytest.raises(NoSuchKey):
        update.check(None)
    with pytest.raises(NoSuchKey):
        update.check(_version(Kind.DELETE_MARKER, "", 2))
    WriteCondition(if_match_etag="*").check(_version(Kind.OBJECT, "f", 1))


def test_observed_state_tells_conflict_from_precondition() -> None:
    first = _version(Kind.OBJECT, "e", 1)
    started_absent = WriteCondition(if_none_match_any=True).observing(None)
    with pytest.raises(ConditionalConflict):
        started_absent.check(first)
    started_present = WriteCondition(if_none_match_any=True).observing(first)
    with pytest.raises(PreconditionFailed):
        started_present.check(first)
    stale = WriteCondition(if_match_etag="e").observing(first)
    with pytest.raises(ConditionalConflict):
        stale.check(_version(Kind.OBJECT, "f", 2))


def test_concurrent_create_only_writes_commit_once(tmp_path: Path) -> None:
    async def scenario(store: Store) -> None:
        condition = await store.observe_condition("b", "k", WriteCondition(if_none_match_any=True))
        bodies = [f"body {n}".encode() for n in range(8)]
        results = await asyncio.gather(
            *(put_object(store, "b", "k", body, condition=condition) for body in bodies),
            return_exceptions=True,
        )
        winners = [n for n, r in enumerate(results) if isinstance(r, Manifest)]
        assert len(winners) == 1
        assert all(
            isinstance(r, ConditionalConflict) for n, r in enumerate(results) if n != winners[0]
        )
        stored = await store.head_object("b", "k")
        assert await read_all(store, stored) == bodies[winners[0]]
        assert (CONDITIONAL_HEADER, "1") in stored.headers
        with pytest.raises(PreconditionFailed):
            await store.observe_condition("b", "k", WriteCondition(if_none_match_any=True))

    run_with_store(scenario, tmp_path)
