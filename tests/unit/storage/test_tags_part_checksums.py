"""Tags written with a new version, and multipart part checksums (storage layer)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.errors import BadDigest, InvalidPart, NoSuchKey
from storage.store import Store, StoreConfig
from storage.uploads import (
    DEFAULT_PART_CHECKSUM_HEADER,
    PART_BYTES_MIN,
    PART_CHECKSUMS_HEADER,
    UploadInfo,
    whole_object_checksum,
)
from tests import checksum_reference as reference
from tests.unit.storage.stores import put_object, run_with_store

CRC32 = "x-amz-checksum-crc32"
CRC64NVME = "x-amz-checksum-crc64nvme"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_tags_with_a_put_ride_in_its_single_change_row(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await put_object(store, "b", "k", b"x", (("a", "1"),))
        assert await store.get_tags("b", "k", None) == ("null", (("a", "1"),))

    run_with_store(body, tmp_path)
    with sqlite3.connect(tmp_path / "meta.db") as conn:
        rows = conn.execute("SELECT op, payload FROM changes WHERE key = 'k'").fetchall()
    assert len(rows) == 1
    assert rows[0][0] == "object.put"
    assert json.loads(rows[0][1]) == {"tags": [["a", "1"]]}


def test_copy_keeps_or_replaces_tags(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        source = await put_object(store, "b", "src", b"x", (("a", "1"),))
        await store.copy_object(source, "b", "kept", None)
        await store.copy_object(source, "b", "replaced", None, (("b", "2"),))
        assert (await store.get_tags("b", "kept", None))[1] == (("a", "1"),)
        assert (await store.get_tags("b", "replaced", None))[1] == (("b", "2"),)

    run_with_store(body, tmp_path)


async def _upload_parts(
    store: Store, parts: list[bytes], with_checksums: bool, checksum_type: str | None = None
) -> UploadInfo:
    headers = (("x-amz-checksum-type", checksum_type),) if checksum_type else ()
    upload = await store.multipart.create_upload("b", "mp", headers, "owner", "CRC32")
    for number, data in enumerate(parts, start=1):
        writer = await store.multipart.begin_part(upload, 1 << 40)
        await writer.write(data)
        await writer.finish()
        checksums = ((CRC32, crc32_b64(data)),) if with_checksums else ()
        await writer.commit_part(upload, number, checksums)
    return upload


def test_completion_composes_the_part_checksums(tmp_path: Path) -> None:
    parts = [os.urandom(PART_BYTES_MIN), os.urandom(1000)]

    async def body(store: Store) -> None:
        upload = await _upload_parts(store, parts, with_checksums=True)
        listed, _truncated = await store.multipart.list_parts(upload, 0, 1000)
        assert [p.manifest.header(CRC32) for p in listed] == [crc32_b64(p) for p in parts]
        etags = [(p.part_number, p.etag) for p in listed]
        wrong = ((1, CRC32, crc32_b64(b"other")),)
        with pytest.raises(InvalidPart):
            await store.multipart.complete_upload(upload, etags, part_checksums=wrong)
        right = tuple((n, CRC32, crc32_b64(d)) for n, d in enumerate(parts, start=1))
        manifest = await store.multipart.complete_upload(upload, etags, part_checksums=right)
        raw = b"".join(base64.b64decode(crc32_b64(p)) for p in parts)
        assert manifest.header(CRC32) == f"{crc32_b64(raw)}-2"
        assert manifest.header("x-amz-checksum-type") == "COMPOSITE"
        assert manifest.header(PART_CHECKSUMS_HEADER) == ",".join(crc32_b64(p) for p in parts)

    run_with_store(body, tmp_path)


def test_full_object_completion_combines_part_crcs(tmp_path: Path) -> None:
    parts = [os.urandom(PART_BYTES_MIN), os.urandom(PART_BYTES_MIN + 3), os.urandom(1000)]
    whole = crc32_b64(b"".join(parts))  # zlib over the whole object: independent of awscrt

    async def body(store: Store) -> None:
        upload = await _upload_parts(store, parts, True, "FULL_OBJECT")
        listed, _truncated = await store.multipart.list_parts(upload, 0, 1000)
        etags = [(p.part_number, p.etag) for p in listed]
        with pytest.raises(BadDigest):
            await store.multipart.complete_upload(
                upload, etags, expected_checksum=(CRC32, crc32_b64(b"x"))
            )
        with pytest.raises(NoSuchKey):  # the refused completion committed nothing
            await store.head_object("b", "mp")
        manifest = await store.multipart.complete_upload(
            upload, etags, expected_checksum=(CRC32, whole)
        )
        assert manifest.header(CRC32) == whole
        assert manifest.header("x-amz-checksum-type") == "FULL_OBJECT"
        assert [h for h, _v in manifest.headers].count("x-amz-checksum-type") == 1

    run_with_store(body, tmp_path)


def test_completion_refuses_a_part_without_the_uploads_checksum(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        upload = await _upload_parts(store, [b"only"], with_checksums=False)
        listed, _truncated = await store.multipart.list_parts(upload, 0, 1000)
        with pytest.raises(InvalidPart):
            await store.multipart.complete_upload(upload, [(1, listed[0].etag)])

    run_with_store(body, tmp_path)


def test_buckets_with_tags_are_known_across_restarts(tmp_path: Path) -> None:
    async def tag_one(store: Store) -> None:
        await store.create_bucket("plain", "owner")
        assert not store.may_have_tags("b")
        await put_object(store, "b", "k", b"x", (("a", "1"),))
        assert store.may_have_tags("b")
        assert not store.may_have_tags("plain")

    async def reopened(store: Store) -> None:
        assert store.may_have_tags("b")
        assert not store.may_have_tags("plain")
        source = await store.head_object("b", "k")
        await store.copy_object(source, "plain", "copy", None)  # copies the source's tags
        assert store.may_have_tags("plain")

    run_with_store(tag_one, tmp_path / "a")
    asyncio.run(_reopen(tmp_path / "a", reopened))


async def _reopen(data_dir: Path, test: Callable[[Store], Awaitable[None]]) -> None:
    store = await Store.open(StoreConfig(data_dir, chunk_bytes=1 << 20))
    try:
        await test(store)
    finally:
        await store.close()


def test_default_crc64nvme_of_an_upload_without_algorithm(tmp_path: Path) -> None:
    """Parts of an upload created without an algorithm carry the default CRC64NVME under
    its internal name: completion combines them into the object's FULL_OBJECT CRC64NVME
    (checked against the independent reference); one part without it (written before the
    default existed) leaves the object without a checksum."""
    parts = [os.urandom(PART_BYTES_MIN), os.urandom(777)]

    async def upload(store: Store, key: str, default_for: set[int]) -> UploadInfo:
        upload = await store.multipart.create_upload("b", key, (), "owner")
        for number, data in enumerate(parts, start=1):
            writer = await store.multipart.begin_part(upload, 1 << 40)
            await writer.write(data)
            await writer.finish()
            value = reference.b64("CRC64NVME", data)
            kept = ((DEFAULT_PART_CHECKSUM_HEADER, value),) if number in default_for else ()
            part = await writer.commit_part(upload, number, kept)
            assert part.size == len(data)
        return upload

    async def body(store: Store) -> None:
        complete = await upload(store, "mp", {1, 2})
        manifest = await store.multipart.complete_upload(complete, await _listed(store, complete))
        headers = dict(manifest.headers)
        assert headers[CRC64NVME] == reference.full_object("CRC64NVME", parts)
        assert headers["x-amz-checksum-type"] == "FULL_OBJECT"
        assert DEFAULT_PART_CHECKSUM_HEADER not in headers
        legacy = await upload(store, "old", {2})
        manifest = await store.multipart.complete_upload(legacy, await _listed(store, legacy))
        assert not [n for n, _ in manifest.headers if n.startswith("x-amz-checksum-")]

    run_with_store(body, tmp_path)


async def _listed(store: Store, upload: UploadInfo) -> list[tuple[int, str]]:
    parts, _more = await store.multipart.list_parts(upload, 0, 10)
    return [(part.part_number, part.etag) for part in parts]


def test_whole_object_checksum_only_of_full_object_values() -> None:
    single = (("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),)
    assert whole_object_checksum(single, "CRC64NVME") == "AAAAAAAAAAA="
    assert whole_object_checksum(single, "CRC32") is None
    composite = ((CRC32, "AAAAAA==-2"), ("x-amz-checksum-type", "COMPOSITE"))
    assert whole_object_checksum(composite, "CRC32") is None
    full = ((CRC32, "AAAAAA=="), ("x-amz-checksum-type", "FULL_OBJECT"))
    assert whole_object_checksum(full, "CRC32") == "AAAAAA=="
