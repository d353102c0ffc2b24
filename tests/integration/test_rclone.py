"""rclone (s3 backend, provider Other, path style) as a subprocess against a real node."""

from __future__ import annotations

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

# Below rclone's 200 MiB upload cutoff: one PutObject (multipart is not implemented yet).
BIG_SIZE = 100 * MiB
BIG_NAME = "media/big.bin"

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
    )

    def rclone(*args: str, check: bool = True) -> Any:
        assert RCLONE is not None
        return run([RCLONE, "--retries", "1", "--low-level-retries", "1", *args], env, check=check)

    return rclone


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small tree plus a 100 MiB random file; shared, so tests must not modify it."""
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

    checked = rclone("check", str(source_tree), remote)
    assert checked.returncode == 0
    assert "0 differences found" in checked.stderr

    expected_sizes = _tree_sizes(source_tree)
    assert _ls(rclone, remote) == expected_sizes

    entries = json.loads(rclone("lsjson", "-R", "--hash", "--files-only", remote).stdout)
    assert {e["Path"]: e["Size"] for e in entries} == expected_sizes
    big = next(e for e in entries if e["Path"] == BIG_NAME)
    assert big["Hashes"]["md5"] == head["ETag"].strip('"')

    # rclone stores the source mtime as metadata and restores it on download.
    down = tmp_path / "down"
    rclone("copy", remote, str(down))
    assert _tree_sizes(down) == expected_sizes
    assert sha256_file(down / BIG_NAME) == sha256_file(source_tree / BIG_NAME)
    small = {k: v for k, v in read_tree(down).items() if k != BIG_NAME}
    assert small == SMALL_TREE
    local_mtime = int((source_tree / "top.txt").stat().st_mtime)
    assert int((down / "top.txt").stat().st_mtime) == local_mtime

    # check is able to fail: change one object behind rclone's back.
    s3.put_object(Bucket=bucket, Key="tree/top.txt", Body=b"tampered\n")
    differing = rclone("check", str(source_tree), remote, check=False)
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
