"""rclone (s3 backend, provider Other, path style) as a subprocess against a real node.

rclone runs at its defaults but for one setting: ``--s3-upload-cutoff`` is lowered from
200 MiB to 32 MiB (``RCLONE_S3_UPLOAD_CUTOFF``), so that the 40 MiB file of the tree goes
up as a multipart upload (rclone's default 5 MiB chunks, 4 at a time, its MD5 kept in
``X-Amz-Meta-Md5chksum``) without a 200 MiB file making the tests slow; the small files are
single PutObjects.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clients import (
    SMALL_TREE,
    MiB,
    base_env,
    make_tree,
    read_tree,
    run,
    sha256_file,
    write_random,
)
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(
    RCLONE is None, reason="rclone is not installed (apt-get install rclone)"
)

# Above UPLOAD_CUTOFF: a multipart upload of rclone's default 5 MiB chunks.
BIG_SIZE = 40 * MiB + 12345  # 9 parts, the last one short
BIG_NAME = "media/big.bin"
UPLOAD_CUTOFF = "32M"
DEFAULT_CHUNK = 5 * MiB

Rclone = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def rclone(node: NodeProcess, tmp_path: Path) -> Rclone:
    home = tmp_path / "rclone-home"
    env = base_env(home)
    config = home / "rclone.conf"
    config.write_text("")
    env.update(
        RCLONE_CONFIG=str(config),
        RCLONE_CONFIG_LAKE_TYPE="s3",
        RCLONE_CONFIG_LAKE_PROVIDER="Other",
        RCLONE_CONFIG_LAKE_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_LAKE_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_LAKE_ENDPOINT=node.url,
        RCLONE_CONFIG_LAKE_REGION=REGION,
        RCLONE_CONFIG_LAKE_FORCE_PATH_STYLE="true",
        RCLONE_CACHE_DIR=str(home / "cache"),
        RCLONE_S3_UPLOAD_CUTOFF=UPLOAD_CUTOFF,
    )

    def rclone(*args: str, check: bool = True) -> Any:
        assert RCLONE is not None
        return run([RCLONE, "--retries", "1", "--low-level-retries", "1", *args], env, check=check)

    return rclone


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small tree plus a 40 MiB random file; shared, so tests must not modify it."""
    root = make_tree(tmp_path_factory.mktemp("rclone-src") / "tree", SMALL_TREE)
    write_random(root / BIG_NAME, BIG_SIZE)
    return root


def _tree_sizes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
    }


def _ls(rclone: Rclone, remote: str) -> dict[str, int]:
    """``rclone ls`` output ("<size> <path>", path may contain spaces) as {path: size}."""
    listed = {}
    for line in rclone("ls", remote).stdout.splitlines():
        size, path = line.strip().split(" ", 1)
        listed[path] = int(size)
    return listed


def test_copy_check_ls_lsjson_and_download(
    rclone: Rclone, s3: Any, bucket: str, source_tree: Path, tmp_path: Path
) -> None:
    remote = f"lake:{bucket}/tree"
    rclone("copy", str(source_tree), remote)

    head = s3.head_object(Bucket=bucket, Key=f"tree/{BIG_NAME}")
    assert head["ContentLength"] == BIG_SIZE
    parts = -(-BIG_SIZE // DEFAULT_CHUNK)
    assert head["ETag"].endswith(f'-{parts}"'), head["ETag"]  # multipart, default chunks
    big_md5 = sha256_file(source_tree / BIG_NAME, "md5")
    assert head["Metadata"]["md5chksum"] == base64.b64encode(bytes.fromhex(big_md5)).decode()

    checked = rclone("check", str(source_tree), remote)
    assert checked.returncode == 0
    assert "0 differences found" in checked.stderr

    expected_sizes = _tree_sizes(source_tree)
    assert _ls(rclone, remote) == expected_sizes

    entries = json.loads(rclone("lsjson", "-R", "--hash", "--files-only", remote).stdout)
    assert {e["Path"]: e["Size"] for e in entries} == expected_sizes
    big = next(e for e in entries if e["Path"] == BIG_NAME)
    assert big["Hashes"]["md5"] == big_md5  # from the metadata: a multipart ETag is no MD5
    small_md5 = next(e for e in entries if e["Path"] == "top.txt")["Hashes"]["md5"]
    assert f'"{small_md5}"' == s3.head_object(Bucket=bucket, Key="tree/top.txt")["ETag"]

    # rclone stores the source mtime as metadata and restores it on download.
    down = tmp_path / "down"
    rclone("copy", remote, str(down))
    assert _tree_sizes(down) == expected_sizes
    assert sha256_file(down / BIG_NAME) == sha256_file(source_tree / BIG_NAME)
    small = {k: v for k, v in read_tree(down).items() if k != BIG_NAME}
    assert small == SMALL_TREE
    local_mtime = int((source_tree / "top.txt").stat().st_mtime)
    assert int((down / "top.txt").stat().st_mtime) == local_mtime

    # check --download compares the bytes themselves, not hashes: every object is read back.
    downloaded = rclone("check", "--download", str(source_tree), remote)
    assert "0 differences found" in downloaded.stderr

    # Both checks are able to fail: change one object behind rclone's back, same size.
    s3.put_object(Bucket=bucket, Key="tree/top.txt", Body=b"top levex\n")
    for mode in ([], ["--download"]):
        differing = rclone("check", *mode, str(source_tree), remote, check=False)
        assert differing.returncode != 0
        assert "1 differences found" in differing.stderr


def test_sync_mirrors_changes(
    rclone: Rclone, s3: Any, bucket: str, source_tree: Path, tmp_path: Path
) -> None:
    remote = f"lake:{bucket}/mirror"
    rclone("sync", str(source_tree), remote)
    assert rclone("check", str(source_tree), remote).returncode == 0

    # A second source: big file dropped, one file changed, one added. Its unchanged files have
    # new mtimes: --checksum compares MD5s instead, because updating only the stored mtime
    # needs CopyObject (see test_sync_updates_modtime_of_unchanged_files).
    changed = make_tree(tmp_path / "changed", SMALL_TREE)
    (changed / "top.txt").write_bytes(b"new top\n")
    (changed / "added" / "new.txt").parent.mkdir()
    (changed / "added" / "new.txt").write_bytes(b"brand new\n")
    synced = rclone("sync", "--checksum", "-v", str(changed), remote)
    assert "Copied (replaced existing)" in synced.stderr
    assert "Copied (new)" in synced.stderr

    assert rclone("check", str(changed), remote).returncode == 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"mirror/{k}" for k in [*SMALL_TREE, "added/new.txt"])
    assert s3.get_object(Bucket=bucket, Key="mirror/top.txt")["Body"].read() == b"new top\n"

    # And back down: a local mirror of the bucket.
    local = tmp_path / "local-mirror"
    make_tree(local, {"stale.txt": b"should be removed"})
    rclone("sync", remote, str(local))
    assert read_tree(local) == read_tree(changed)


def test_delete_and_purge(rclone: Rclone, s3: Any, source_tree: Path) -> None:
    bucket = "rclone-delete-purge"
    rclone("mkdir", f"lake:{bucket}")
    s3.head_bucket(Bucket=bucket)
    rclone("copy", str(source_tree), f"lake:{bucket}")

    # delete removes files (filtered), never directories or the bucket.
    rclone("delete", f"lake:{bucket}/docs")
    remaining = _ls(rclone, f"lake:{bucket}")
    assert sorted(remaining) == sorted(
        k for k in _tree_sizes(source_tree) if not k.startswith("docs/")
    )
    rclone("delete", "--include", "*.bin", f"lake:{bucket}")
    assert BIG_NAME not in _ls(rclone, f"lake:{bucket}")

    # purge removes everything under the path, then the bucket itself.
    rclone("purge", f"lake:{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    gone = rclone("ls", f"lake:{bucket}", check=False)
    assert gone.returncode != 0


def test_sync_updates_modtime_of_unchanged_files(
    rclone: Rclone, bucket: str, tmp_path: Path
) -> None:
    remote = f"lake:{bucket}/modtime"
    source = make_tree(tmp_path / "src", {"same.txt": b"same content\n"})
    rclone("sync", str(source), remote)
    os.utime(source / "same.txt", (1_600_000_000, 1_600_000_000))
    rclone("sync", str(source), remote)
    entries = json.loads(rclone("lsjson", remote).stdout)
    assert entries[0]["ModTime"].startswith("2020-09-13T12:26:40")
