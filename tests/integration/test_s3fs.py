"""s3fs (fsspec's S3 filesystem, aiobotocore underneath) at its DEFAULT settings, real node.

s3fs is what pandas, dask, xarray and most of the fsspec world use for ``s3://``; it is used
directly here (no pandas). Its defaults decide the requests: a 50 MiB block size
(``default_block_size``) and chunk size, so ``put`` of a file of twice that or more becomes a
multipart upload of 50 MiB parts, and ``open(..., "wb")`` uploads a part each time 50 MiB are
buffered; ``get`` of more than a block downloads ranged parts concurrently; ``copy`` below
150 MiB is one CopyObject. aiobotocore is botocore, so flexible checksums are on (CRC32 on
PutObject and UploadPart). What the node logged for each client request is checked too: any
status other than 2xx, or a 404 for a probe of a missing path, means the node answered
differently from S3.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clients import (
    SMALL_TREE,
    MiB,
    make_tree,
    read_tree,
    sha256_file,
    write_random,
)
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess


def _import_s3fs() -> Any:
    """s3fs is a test extra; without it skip locally with the reason, but fail in CI."""
    try:
        import s3fs
    except ImportError as error:
        message = f"s3fs is not installed ({error}); pip install -e '.[test]' installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return s3fs


@pytest.fixture
def fs(node: NodeProcess) -> Iterator[Any]:
    """A fresh S3FileSystem at its defaults (no listing cache shared between tests)."""
    s3fs = _import_s3fs()
    filesystem = s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        endpoint_url=node.url,
        client_kwargs={"region_name": REGION},
        skip_instance_cache=True,
    )
    yield filesystem
    filesystem.clear_instance_cache()


# s3fs probes before it creates or reads: a 404 there is S3's answer too.
_PROBES = {"HeadObject", "HeadBucket", "GetBucketLocation"}


def _unexpected_answers(node: NodeProcess, bucket: str) -> list[dict[str, Any]]:
    """Requests on the bucket the node did not answer 2xx (or 404 to a probe)."""
    return [
        entry
        for entry in node.access_log(f"/{bucket}")
        if not (200 <= entry["status"] < 300)
        and not (entry["status"] == 404 and entry["operation"] in _PROBES)
    ]


def _operations(node: NodeProcess, bucket: str, key: str) -> list[str]:
    """The operations logged for ``key``; waits a little for the first line: several worker
    processes write the shared log file."""
    for _attempt in range(40):
        found = [entry["operation"] for entry in node.access_log(f"/{bucket}/{key}")]
        if found:
            return found
        time.sleep(0.05)
    return []


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_small_files_put_get_ls_find_du_rm(
    fs: Any, s3: Any, node: NodeProcess, tmp_path: Path
) -> None:
    bucket = "s3fs-small"
    fs.mkdir(bucket)  # CreateBucket through s3fs (HEAD probe 404 first)
    source = make_tree(tmp_path / "src", SMALL_TREE)
    fs.put(f"{source}/", f"{bucket}/tree", recursive=True)
    fs.pipe(f"{bucket}/piped.txt", b"piped bytes\n")

    assert fs.cat(f"{bucket}/piped.txt") == b"piped bytes\n"
    assert sorted(fs.ls(bucket)) == [f"{bucket}/piped.txt", f"{bucket}/tree"]
    found = fs.find(f"{bucket}/tree")
    assert sorted(found) == sorted(f"{bucket}/tree/{name}" for name in SMALL_TREE)
    assert fs.du(f"{bucket}/tree") == sum(len(data) for data in SMALL_TREE.values())
    detail = fs.info(f"{bucket}/tree/docs/readme.md")
    assert detail["size"] == len(SMALL_TREE["docs/readme.md"])
    assert detail["ETag"] == f'"{_md5(SMALL_TREE["docs/readme.md"])}"'
    assert fs.isdir(f"{bucket}/tree/docs/guide")
    assert not fs.exists(f"{bucket}/tree/missing.txt")

    down = tmp_path / "down"
    fs.get(f"{bucket}/tree/", str(down), recursive=True)
    assert read_tree(down) == SMALL_TREE
    # What s3fs wrote is what boto3 reads, byte for byte.
    unicode_key = "tree/data/ünï cødé+plus=eq&amp;(1).txt"
    body = s3.get_object(Bucket=bucket, Key=unicode_key)["Body"].read()
    assert body == SMALL_TREE["data/ünï cødé+plus=eq&amp;(1).txt"]

    fs.copy(f"{bucket}/piped.txt", f"{bucket}/copied.txt")
    assert s3.get_object(Bucket=bucket, Key="copied.txt")["Body"].read() == b"piped bytes\n"
    assert _operations(node, bucket, "copied.txt")[0] == "CopyObject"

    fs.rm(f"{bucket}/tree/docs", recursive=True)
    fs.rm(f"{bucket}/piped.txt")
    fs.invalidate_cache()
    assert sorted(fs.find(bucket)) == sorted(
        [f"{bucket}/copied.txt"]
        + [f"{bucket}/tree/{name}" for name in SMALL_TREE if not name.startswith("docs/")]
    )
    fs.rm(bucket, recursive=True)  # every object, then the bucket
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert _unexpected_answers(node, bucket) == []


def test_multipart_put_ranged_get_and_copy(
    fs: Any, s3: Any, node: NodeProcess, bucket: str, tmp_path: Path
) -> None:
    """A file of two default blocks: s3fs uploads it as two 50 MiB parts."""
    block = fs.default_block_size
    local = write_random(tmp_path / "big.bin", 2 * block)
    fs.put(str(local), f"{bucket}/big.bin")
    assert _operations(node, bucket, "big.bin") == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 2 * block
    assert head["ETag"].endswith('-2"')
    assert fs.info(f"{bucket}/big.bin")["size"] == 2 * block

    # get: ranged GETs run concurrently, one per block.
    down = tmp_path / "down.bin"
    fs.get(f"{bucket}/big.bin", str(down))
    assert sha256_file(down) == sha256_file(local)

    # copy below s3fs's managed-copy threshold: one server-side CopyObject.
    fs.copy(f"{bucket}/big.bin", f"{bucket}/copy.bin")
    assert _operations(node, bucket, "copy.bin") == ["CopyObject"]
    with fs.open(f"{bucket}/copy.bin", "rb") as handle:
        handle.seek(block - 10)
        middle = handle.read(20)
    with local.open("rb") as original:
        original.seek(block - 10)
        assert middle == original.read(20)
    assert _unexpected_answers(node, bucket) == []


def test_open_wb_streams_parts(fs: Any, s3: Any, node: NodeProcess, bucket: str) -> None:
    """``open(..., "wb")`` uploads a part whenever a block is buffered, the rest on close."""
    block = fs.default_block_size
    digest = hashlib.sha256()
    with fs.open(f"{bucket}/stream.bin", "wb") as handle:
        for _ in range(block // MiB):
            chunk = os.urandom(MiB)
            handle.write(chunk)
            digest.update(chunk)
        handle.write(b"tail")
        digest.update(b"tail")
    assert _operations(node, bucket, "stream.bin") == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]
    head = s3.head_object(Bucket=bucket, Key="stream.bin")
    assert head["ContentLength"] == block + 4
    assert head["ETag"].endswith('-2"')
    streamed = s3.get_object(Bucket=bucket, Key="stream.bin")["Body"]
    got = hashlib.sha256()
    for chunk in streamed.iter_chunks(1 << 20):
        got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()
    # Under a block, open("wb") ends in a single PutObject.
    with fs.open(f"{bucket}/short.txt", "wb") as handle:
        handle.write(b"short")
    assert _operations(node, bucket, "short.txt") == ["PutObject"]
    assert fs.cat(f"{bucket}/short.txt") == b"short"
    assert _unexpected_answers(node, bucket) == []
