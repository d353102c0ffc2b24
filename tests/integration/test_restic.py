"""restic (backups to S3 through minio-go, at its defaults) against a real node.

restic keeps a repository of content-addressed files under a prefix: keys, config, locks,
packs of up to 16 MiB under ``data/xx/``, indexes and snapshots. It lists with
ListObjectsV2, probes with HeadObject, reads packs with ranged GETs (206), and minio-go
switches PutObject to a multipart upload from its 16 MiB part size on. Every request the
node logs during the test must get a 2xx answer, or 404 to the HeadObject probe of a
repository that does not exist yet, as S3 answers them.
"""

from __future__ import annotations

import json
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
    write_random,
)
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess
from tests.integration.programs import require_program

Restic = Callable[..., subprocess.CompletedProcess[str]]
RANDOM_FILES = 5
RANDOM_SIZE = 3 * MiB + 4321  # several MB in all: more than one 16 MiB pack


@pytest.fixture
def restic(node: NodeProcess, bucket: str, tmp_path: Path) -> Restic:
    """restic pointed at ``s3:<node>/<bucket>/repo``, nothing but its defaults."""
    program = require_program("restic")
    env = base_env(tmp_path / "restic-home")
    env.update(
        RESTIC_REPOSITORY=f"s3:{node.url}/{bucket}/repo",
        RESTIC_PASSWORD="correct horse battery staple",
        RESTIC_CACHE_DIR=str(tmp_path / "restic-cache"),
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    )

    def restic(*args: str) -> Any:
        return run([program, *args], env)

    return restic


def _source_tree(root: Path) -> Path:
    make_tree(root, SMALL_TREE)
    for n in range(RANDOM_FILES):
        write_random(root / "random" / f"{n}.bin", RANDOM_SIZE + n)
    return root


def _snapshots(restic: Restic) -> list[dict[str, Any]]:
    return list(json.loads(restic("snapshots", "--json").stdout))


def _unexpected_answers(node: NodeProcess, bucket: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in node.access_log(f"/{bucket}")
        if not (200 <= entry["status"] < 300)
        and not (entry["status"] == 404 and entry["operation"] == "HeadObject")
    ]


def test_init_backup_check_restore_forget_prune(
    restic: Restic, node: NodeProcess, s3: Any, bucket: str, tmp_path: Path
) -> None:
    restic("init")
    source = _source_tree(tmp_path / "src")
    restic("backup", str(source))
    first = _snapshots(restic)
    assert len(first) == 1 and first[0]["paths"] == [str(source)]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "repo/config" in keys
    assert any(key.startswith("repo/data/") for key in keys)

    restic("check", "--read-data")  # downloads and verifies every pack
    restored = tmp_path / "restored"
    restic("restore", "latest", "--target", str(restored))
    # restic restores the absolute source path under the target.
    assert read_tree(restored / source.relative_to("/")) == read_tree(source)

    # A second backup without one random file; forget the first snapshot and prune: the
    # data only it referenced is deleted (or repacked) from the bucket.
    (source / "random" / "0.bin").unlink()
    (source / "added.txt").write_bytes(b"added after the first backup\n")
    restic("backup", str(source))
    assert len(_snapshots(restic)) == 2
    pruned = restic("forget", "--keep-last", "1", "--prune")
    assert "remove 1 snapshots" in pruned.stdout, pruned.stdout
    remaining = _snapshots(restic)
    assert len(remaining) == 1 and remaining[0]["id"] != first[0]["id"]
    deletes = [e for e in node.access_log(f"/{bucket}/repo/data/") if e["method"] == "DELETE"]
    assert deletes, "prune deleted no pack"

    restic("check", "--read-data")
    again = tmp_path / "restored-again"
    restic("restore", "latest", "--target", str(again))
    assert read_tree(again / source.relative_to("/")) == read_tree(source)
    assert _unexpected_answers(node, bucket) == []
