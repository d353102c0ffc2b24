"""A part uploaded again replaces the earlier one in commit order, whatever the order in
which the uploads started: ListParts, CompleteMultipartUpload and rebuild-index all see the
upload committed last."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage.errors import InvalidPart
from storage.ops.rebuild import COMPLETE
from storage.store import Store
from storage.uploads import UploadInfo
from tests.unit.storage.ops.test_rebuild import drop_catalog, rebuild, run
from tests.unit.storage.stores import read_all

EARLY = b"started first, committed last" * 100
LATE = b"started last, committed first" * 100


async def _race(store: Store) -> UploadInfo:
    await store.create_bucket("b", "owner")
    upload = await store.multipart.create_upload("b", "k", (), "owner")
    slow = await store.multipart.begin_part(upload, 1 << 20)
    await slow.write(EARLY)  # received, not committed yet
    fast = await store.multipart.begin_part(upload, 1 << 20)
    await fast.write(LATE)
    await fast.finish()
    await fast.commit_part(upload, 1)
    await slow.finish()
    await slow.commit_part(upload, 1)
    return upload


async def _listed_part(store: Store, upload: UploadInfo) -> bytes:
    parts, _more = await store.multipart.list_parts(upload, 0, 10)
    assert [p.part_number for p in parts] == [1]
    assert parts[0].etag == hashlib.md5(EARLY).hexdigest()
    return await read_all(store, parts[0].manifest)


def test_the_part_committed_last_wins_and_survives_rebuild(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    async def race(store: Store) -> str:
        upload = await _race(store)
        assert await _listed_part(store, upload) == EARLY
        return upload.upload_id

    upload_id = run(data_dir, race)
    drop_catalog(data_dir)
    assert rebuild(data_dir)["exit_code"] == COMPLETE

    async def after_rebuild(store: Store) -> None:
        upload = await store.multipart.get_upload("b", "k", upload_id)
        assert await _listed_part(store, upload) == EARLY
        with pytest.raises(InvalidPart):
            await store.multipart.complete_upload(upload, [(1, hashlib.md5(LATE).hexdigest())])
        done = await store.multipart.complete_upload(upload, [(1, hashlib.md5(EARLY).hexdigest())])
        assert await read_all(store, await store.head_object("b", "k")) == EARLY
        assert done.etag == (await store.head_object("b", "k")).etag

    run(data_dir, after_rebuild)
