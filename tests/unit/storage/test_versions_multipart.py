"""Versioning, multipart completion and copy at the storage layer (real files and SQLite)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from storage.errors import EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from storage.store import DeleteMarker, Store
from storage.uploads import PART_BYTES_MIN
from tests.unit.storage.stores import put_object, read_all, run_with_store


def test_versioned_puts_keep_every_version_and_deletes_add_markers(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.set_versioning("b", "Enabled")
        first = await put_object(store, "b", "k", b"one")
        second = await put_object(store, "b", "k", b"two")
        assert first.version_id != second.version_id != "null"
        assert await read_all(store, await store.head_object("b", "k")) == b"two"
        old = await store.head_object("b", "k", first.version_id)
        assert await read_all(store, old) == b"one"
        deleted = await store.delete_object("b", "k")
        assert deleted.delete_marker
        with pytest.raises(DeleteMarker):
            await store.head_object("b", "k")
        page = await store.list_versions("b", "", "", "", "", 1000)
        assert [(e.version_id, e.is_latest, e.is_delete_marker) for e in page.entries] == [
            (deleted.version_id, True, True),
            (second.version_id, False, False),
            (first.version_id, False, False),
        ]
        # Removing the marker for good brings the previous version back.
        assert deleted.version_id is not None
        await store.delete_object("b", "k", deleted.version_id)
        assert await read_all(store, await store.head_object("b", "k")) == b"two"

    run_with_store(body, tmp_path)


def test_suspended_versioning_overwrites_the_null_version(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.set_versioning("b", "Enabled")
        kept = await put_object(store, "b", "k", b"versioned")
        await store.set_versioning("b", "Suspended")
        await put_object(store, "b", "k", b"null-1")
        await put_object(store, "b", "k", b"null-2")
        page = await store.list_versions("b", "", "", "", "", 1000)
        assert [e.version_id for e in page.entries] == ["null", kept.version_id]

    run_with_store(body, tmp_path)


def test_version_listing_pages_through_every_version_once(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.set_versioning("b", "Enabled")
        expected = []
        for key in ["a", "b/x", "b/y", "c"]:
            for n in range(3):
                expected.append(
                    (key, (await put_object(store, "b", key, str(n).encode())).version_id)
                )
        seen: list[tuple[str, str]] = []
        key_marker = version_marker = ""
        while True:
            page = await store.list_versions("b", "", "", key_marker, version_marker, 2)
            seen += [(e.key, e.version_id) for e in page.entries]
            if not page.is_truncated:
                break
            key_marker = page.next_key_marker or ""
            version_marker = page.next_version_marker or ""
        by_key: dict[str, list[str]] = {}
        for key, version in expected:
            by_key.setdefault(key, []).insert(0, version)  # newest first
        assert seen == [(k, v) for k in sorted(by_key) for v in by_key[k]]
        grouped = await store.list_versions("b", "", "/", "", "", 1000)
        assert grouped.common_prefixes == ["b/"]

    run_with_store(body, tmp_path)


def test_multipart_completion_concatenates_parts_without_copying(tmp_path: Path) -> None:
    parts = [os.urandom(PART_BYTES_MIN), os.urandom(PART_BYTES_MIN + 3), os.urandom(1000)]

    async def body(store: Store) -> None:
        upload = await store.multipart.create_upload(
            "b", "big", (("content-type", "a/b"),), "owner"
        )
        etags = []
        for number, data in enumerate(parts, start=1):
            writer = await store.multipart.begin_part(upload, 1 << 40)
            await writer.write(data)
            await writer.finish()
            etags.append((await writer.commit_part(upload, number)).etag)
        listed, truncated = await store.multipart.list_parts(upload, 0, 1000)
        assert [p.part_number for p in listed] == [1, 2, 3] and not truncated
        manifest = await store.multipart.complete_upload(
            upload, list(zip([1, 2, 3], etags, strict=True))
        )
        expected_etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        assert manifest.etag == f"{expected_etag}-3"
        assert manifest.header("content-type") == "a/b"
        part_chunks = sum(len(p) // (1 << 20) + (len(p) % (1 << 20) > 0) for p in parts)
        assert len(manifest.chunks) == part_chunks  # parts' chunks reused as they are
        assert await read_all(store, await store.head_object("b", "big")) == b"".join(parts)
        with pytest.raises(NoSuchUpload):
            await store.multipart.get_upload("b", "big", upload.upload_id)

    run_with_store(body, tmp_path)


def test_completion_checks_order_etags_and_minimum_size(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        upload = await store.multipart.create_upload("b", "k", (), "owner")
        infos = {}
        for number, size in [(1, 1000), (2, 1000)]:
            writer = await store.multipart.begin_part(upload, 1 << 40)
            await writer.write(os.urandom(size))
            await writer.finish()
            infos[number] = await writer.commit_part(upload, number)
        with pytest.raises(InvalidPartOrder):
            await store.multipart.complete_upload(upload, [(2, infos[2].etag), (1, infos[1].etag)])
        with pytest.raises(InvalidPart):
            await store.multipart.complete_upload(upload, [(1, "0" * 32)])
        with pytest.raises(InvalidPart):
            await store.multipart.complete_upload(upload, [(3, infos[1].etag)])
        with pytest.raises(EntityTooSmall):
            await store.multipart.complete_upload(upload, [(1, infos[1].etag), (2, infos[2].etag)])
        await store.multipart.abort_upload(upload)
        with pytest.raises(NoSuchUpload):
            await store.multipart.get_upload("b", "k", upload.upload_id)

    run_with_store(body, tmp_path)


def test_copy_shares_chunks_and_part_copy_slices_them(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 500)

    async def body(store: Store) -> None:
        source = await put_object(store, "b", "src", data)
        copy = await store.copy_object(source, "b", "dst", None)
        assert copy.chunks == source.chunks and copy.etag == source.etag
        assert await read_all(store, copy) == data
        upload = await store.multipart.create_upload("b", "parts", (), "owner")
        first, last = 1000, 2 * (1 << 20) + 77
        part = await store.multipart.copy_part(upload, 1, source, first, last)
        assert part.etag == hashlib.md5(data[first : last + 1]).hexdigest()
        done = await store.multipart.complete_upload(upload, [(1, part.etag)])
        assert await read_all(store, done) == data[first : last + 1]

    run_with_store(body, tmp_path)


def test_uploads_listing(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        ids = [
            (await store.multipart.create_upload("b", key, (), "owner")).upload_id
            for key in ["a", "a", "d/1", "d/2", "z"]
        ]
        page = await store.multipart.list_uploads("b", "", "/", "", "", 1000)
        assert [u.key for u in page.uploads] == ["a", "a", "z"]
        assert page.common_prefixes == ["d/"]
        page = await store.multipart.list_uploads("b", "", "", "", "", 2)
        assert page.is_truncated and page.next_key_marker == "a"
        rest = await store.multipart.list_uploads(
            "b", "", "", page.next_key_marker or "", page.next_upload_id_marker or "", 1000
        )
        paged = [u.upload_id for u in page.uploads + rest.uploads]
        assert sorted(paged) == sorted(ids) and len(set(paged)) == len(ids)
        full = await store.multipart.list_uploads("b", "", "", "", "", 1000)
        assert paged == [u.upload_id for u in full.uploads]  # same order, nothing repeated

    run_with_store(body, tmp_path)
