"""Listing properties: paging through Store.list_objects and Store.list_versions returns
exactly what a plain Python model says, in order, with no duplicates and no gaps.

One real Store (files and SQLite in a tmp dir) serves every example; each example gets a
fresh bucket. Keys are short strings over a small alphabet with '/', 'a' (also used as a
delimiter) and multi-byte UTF-8 characters, so prefixes, delimiters and S3's byte order
all meet each other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.store import Store, StoreConfig

ALPHABET = "ab/é€😀"
KEYS = st.text(alphabet=ALPHABET, min_size=1, max_size=4)
_buckets = itertools.count()

Item = tuple[Any, ...]  # ("key", key) / ("version", key, id, latest, marker) / ("prefix", p)


class StoreRunner:
    """A Store living on its own event loop, driven from synchronous test code."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreRunner]:
    loop = asyncio.new_event_loop()
    data_dir = tmp_path_factory.mktemp("listing-properties")
    store = loop.run_until_complete(Store.open(StoreConfig(data_dir, chunk_bytes=4096)))
    try:
        yield StoreRunner(store, loop)
    finally:
        loop.run_until_complete(store.close())
        loop.close()


# ---- the model ------------------------------------------------------------------------------


@dataclass
class Model:
    versioned: bool
    # key -> [(version id, is delete marker)], oldest first (versioned buckets)
    versions: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    # keys currently present (unversioned buckets)
    present: set[str] = field(default_factory=set)

    def record(self, key: str, version_id: str | None, is_marker: bool) -> None:
        if self.versioned:
            assert version_id is not None
            self.versions.setdefault(key, []).append((version_id, is_marker))
        elif is_marker:
            self.present.discard(key)
        else:
            self.present.add(key)

    def current_keys(self) -> list[str]:
        if self.versioned:
            live = [key for key, history in self.versions.items() if not history[-1][1]]
        else:
            live = list(self.present)
        return sorted(live, key=lambda k: k.encode())

    def all_versions(self) -> list[tuple[str, str, bool, bool]]:
        if not self.versioned:
            return [(key, "null", True, False) for key in self.current_keys()]
        rows = []
        for key in sorted(self.versions, key=lambda k: k.encode()):
            history = self.versions[key]
            for index, (version_id, is_marker) in enumerate(reversed(history)):
                rows.append((key, version_id, index == 0, is_marker))
        return rows


def fold(entries: list[tuple[str, Item]], prefix: str, delimiter: str) -> list[Item]:
    """S3's listing of (key, item) pairs under ``prefix``, folded at ``delimiter``."""
    folded: list[Item] = []
    seen_prefixes: set[str] = set()
    for key, item in entries:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common not in seen_prefixes:
                seen_prefixes.add(common)
                folded.append(("prefix", common))
            continue
        folded.append(item)
    return folded


# ---- scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    versioned: bool
    rounds: list[list[tuple[str, str]]]  # per round: (key, "put" | "delete"), distinct keys
    prefix: str
    delimiter: str
    page_size: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    keys = draw(st.lists(KEYS, max_size=12, unique=True))
    rounds = []
    for _ in range(draw(st.integers(1, 3))):
        actions = st.sampled_from(["put", "put", "delete", "skip"])
        chosen = [(key, draw(actions)) for key in keys]
        rounds.append([(key, action) for key, action in chosen if action != "skip"])
    prefix_pool = [""] + [k[:n] for k in keys for n in (1, 2)]
    prefix = draw(st.sampled_from(prefix_pool) | st.text(alphabet=ALPHABET, max_size=2))
    return Scenario(
        versioned=draw(st.booleans()),
        rounds=rounds,
        prefix=prefix,
        delimiter=draw(st.sampled_from(["", "/", "a"])),
        page_size=draw(st.integers(1, 7)),
    )


async def put(store: Store, bucket: str, key: str, body: bytes) -> str:
    writer = await store.begin_object(bucket, key, 1 << 20)
    await writer.write(body)
    await writer.finish()
    return (await writer.commit([("content-type", "x/y")])).version_id


async def build(store: Store, scenario: Scenario) -> tuple[str, Model]:
    """Write the scenario into a fresh bucket; return the bucket and the model of it."""
    bucket = f"prop-{next(_buckets)}"
    await store.create_bucket(bucket, "owner")
    if scenario.versioned:
        await store.set_versioning(bucket, "Enabled")
    model = Model(scenario.versioned)
    for number, actions in enumerate(scenario.rounds):

        async def apply(key: str, action: str, number: int = number) -> None:
            if action == "put":
                version_id: str | None = await put(store, bucket, key, f"{key}@{number}".encode())
                model.record(key, version_id, False)
            else:
                result = await store.delete_object(bucket, key)
                assert result.delete_marker == scenario.versioned
                model.record(key, result.version_id, True)

        # One round touches each key at most once, so its writes can share group commits.
        await asyncio.gather(*(apply(key, action) for key, action in actions))
    return bucket, model


# ---- the properties -------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def page_objects(store: Store, bucket: str, scenario: Scenario) -> list[Item]:
    items: list[Item] = []
    marker = ""
    for _ in range(200):
        page = await store.list_objects(
            bucket, scenario.prefix, scenario.delimiter, marker, scenario.page_size
        )
        got: list[Item] = [("key", e.key) for e in page.entries]
        got += [("prefix", p) for p in page.common_prefixes]
        assert len(got) <= scenario.page_size
        # Within a page, keys and prefixes interleave in S3 order; merge them back.
        got.sort(key=lambda item: item[1].encode())
        items += got
        if not page.is_truncated:
            return items
        assert page.last_returned is not None
        assert page.last_returned == got[-1][1]
        marker = page.last_returned
    raise AssertionError("list_objects never ends")


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_list_objects_pages_match_the_model(runner: StoreRunner, scenario: Scenario) -> None:
    bucket, model = runner.run(build(runner.store, scenario))
    expected = fold(
        [(key, ("key", key)) for key in model.current_keys()], scenario.prefix, scenario.delimiter
    )
    got = runner.run(page_objects(runner.store, bucket, scenario))
    assert got == expected
    # One page holding everything says so.
    whole = runner.run(
        runner.store.list_objects(bucket, scenario.prefix, scenario.delimiter, "", 1000)
    )
    assert not whole.is_truncated
    assert len(whole.entries) + len(whole.common_prefixes) == len(expected)


async def page_versions(store: Store, bucket: str, scenario: Scenario) -> list[Item]:
    items: list[Item] = []
    key_marker, version_marker = "", ""
    for _ in range(200):
        page = await store.list_versions(
            bucket,
            scenario.prefix,
            scenario.delimiter,
            key_marker,
            version_marker,
            scenario.page_size,
        )
        got: list[Item] = [
            ("version", e.key, e.version_id, e.is_latest, e.is_delete_marker) for e in page.entries
        ]
        assert len(got) + len(page.common_prefixes) <= scenario.page_size
        # Entries come in listing order; a common prefix sits where its first key would.
        merged: list[Item] = []
        prefixes = list(page.common_prefixes)
        for entry in got:
            while prefixes and prefixes[0].encode() < entry[1].encode():
                merged.append(("prefix", prefixes.pop(0)))
            merged.append(entry)
        merged += [("prefix", p) for p in prefixes]
        items += merged
        if not page.is_truncated:
            return items
        assert page.next_key_marker is not None
        last = merged[-1]
        if last[0] == "prefix":
            assert (page.next_key_marker, page.next_version_marker) == (last[1], None)
        else:
            assert (page.next_key_marker, page.next_version_marker) == (last[1], last[2])
        key_marker, version_marker = page.next_key_marker, page.next_version_marker or ""
    raise AssertionError("list_versions never ends")


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_list_versions_pages_match_the_model(runner: StoreRunner, scenario: Scenario) -> None:
    bucket, model = runner.run(build(runner.store, scenario))
    expected = fold(
        [(row[0], ("version", *row)) for row in model.all_versions()],
        scenario.prefix,
        scenario.delimiter,
    )
    got = runner.run(page_versions(runner.store, bucket, scenario))
    assert got == expected
    versions = [item for item in got if item[0] == "version"]
    assert len({(item[1], item[2]) for item in versions}) == len(versions)  # no duplicates
