"""Helpers shared by the storage tests: a real Store in a temporary directory (no mocks)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from storage.bucket_config import Tags
from storage.conditions import WriteCondition
from storage.manifest import Manifest
from storage.segments import DEFAULT_SEGMENT_BYTES_MAX
from storage.store import Store, StoreConfig
from storage.sync.site import SyncSite
from storage.uploads import UploadInfo

T = TypeVar("T")

_SITES: weakref.WeakKeyDictionary[Store, SyncSite] = weakref.WeakKeyDictionary()


async def site_of(store: Store) -> SyncSite:
    """The replication side of ``store`` (one per open store, as node/ wires it)."""
    site = _SITES.get(store)
    if site is None:
        site = _SITES[store] = await SyncSite.open(store)
    return site


def run_with_store(
    test: Callable[[Store], Awaitable[T]],
    data_dir: Path,
    chunk_bytes: int = 1 << 20,
    bucket: str | None = "b",
    segment_bytes_max: int = DEFAULT_SEGMENT_BYTES_MAX,
) -> T:
    """Open a store on ``data_dir`` (creating ``bucket`` unless None), run ``test``, close."""

    async def main() -> T:
        config = StoreConfig(data_dir, chunk_bytes=chunk_bytes, segment_bytes_max=segment_bytes_max)
        store = await Store.open(config)
        try:
            if bucket is not None:
                await store.create_bucket(bucket, "owner")
            return await test(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def put_object(
    store: Store,
    bucket: str,
    key: str,
    data: bytes,
    tags: Tags = (),
    piece: int = 1000,
    condition: WriteCondition | None = None,
) -> Manifest:
    """Write ``data`` in ``piece``-sized writes (so chunk boundaries fall mid-piece) and commit."""
    writer = await store.begin_object(bucket, key, 1 << 40)
    for start in range(0, len(data), piece):
        await writer.write(data[start : start + piece])
    await writer.finish()
    return await writer.commit([("content-type", "x/y")], tags, condition)


async def put_part(store: Store, bucket: str, key: str, data: bytes) -> UploadInfo:
    """A new multipart upload with ``data`` as its part 1, left in progress."""
    upload = await store.multipart.create_upload(bucket, key, (), "owner")
    writer = await store.multipart.begin_part(upload, 1 << 40)
    await writer.write(data)
    await writer.finish()
    await writer.commit_part(upload, 1)
    return upload


Stored = dict[tuple[str, str, str], bytes]
"""(bucket, key, version id) -> bytes; ("upload", upload id, "bucket/key") -> its part 1."""


async def assert_stored(store: Store, expected: Stored) -> None:
    """Every version and in-progress part of ``expected`` reads back byte-identical."""
    for (bucket, key, version), data in expected.items():
        if bucket == "upload":
            upload = await store.multipart.get_upload(*version.split("/", 1), key)
            parts, _more = await store.multipart.list_parts(upload, 0, 1)
            assert await read_all(store, parts[0].manifest) == data, f"upload {key} part 1"
        else:
            manifest = await store.head_object(bucket, key, version)
            assert await read_all(store, manifest) == data, f"{bucket}/{key} {version}"


async def read_all(store: Store, manifest: Manifest) -> bytes:
    if manifest.size == 0:
        return b""
    return b"".join([piece async for piece in store.read(manifest, 0, manifest.size - 1)])


async def current_objects(store: Store, bucket: str) -> dict[str, tuple[str, bytes]]:
    """key -> (etag, bytes) of every current object of ``bucket`` (to compare two sites)."""
    page = await store.list_objects(bucket, "", "", "", 1000)
    result = {}
    for entry in page.entries:
        manifest = await store.head_object(bucket, entry.key)
        result[entry.key] = (manifest.etag, await read_all(store, manifest))
    return result


def run_with_two_stores(
    test: Callable[[Store, Store], Awaitable[None]],
    root: Path,
    chunk_bytes: int = 1 << 20,
    segment_bytes_max: int = DEFAULT_SEGMENT_BYTES_MAX,
) -> None:
    """Open stores node-a and node-b under ``root``, run ``test(a, b)``, close both."""

    def config(name: str) -> StoreConfig:
        return StoreConfig(root / name[-1], name, segment_bytes_max, chunk_bytes)

    async def main() -> None:
        a = await Store.open(config("node-a"))
        b = await Store.open(config("node-b"))
        try:
            await test(a, b)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
