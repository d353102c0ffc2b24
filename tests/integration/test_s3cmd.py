"""s3cmd (path-style, SigV4, plain HTTP) as a subprocess against a real node."""

from __future__ import annotations

import hashlib
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
    venv_tool,
    write_random,
)
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

S3CMD = venv_tool("s3cmd")
# Below s3cmd's 15 MB multipart chunk size: one PutObject (multipart is not implemented yet).
FILE_SIZE = 10 * MiB + 123

S3cmd = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def s3cmd(node: NodeProcess, tmp_path: Path) -> S3cmd:
    home = tmp_path / "s3cmd-home"
    env = base_env(home)
    config = home / "s3cfg"
    host = f"127.0.0.1:{node.port}"
    config.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\n"
        f"secret_key = {SECRET_KEY}\n"
        f"host_base = {host}\n"
        # No %(bucket)s in host_bucket: path-style requests.
        f"host_bucket = {host}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "check_ssl_certificate = False\n"
        "guess_mime_type = False\n"
        "progress_meter = False\n"
    )

    def s3cmd(*args: str, check: bool = True) -> Any:
        return run([S3CMD, "--config", str(config), *args], env, check=check)

    return s3cmd


@pytest.fixture(scope="module")
def ten_mib_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random(tmp_path_factory.mktemp("s3cmd-file") / "ten.bin", FILE_SIZE)


def test_mb_ls_rb(s3cmd: S3cmd, s3: Any) -> None:
    name = "s3cmd-mb-ls-rb"
    made = s3cmd("mb", f"s3://{name}")
    assert f"Bucket 's3://{name}/' created" in made.stdout
    s3.head_bucket(Bucket=name)

    listed = s3cmd("ls").stdout.splitlines()
    assert any(line.split()[-1] == f"s3://{name}" for line in listed), listed

    removed = s3cmd("rb", f"s3://{name}")
    assert f"Bucket 's3://{name}/' removed" in removed.stdout
    assert not any(line.split()[-1] == f"s3://{name}" for line in s3cmd("ls").stdout.splitlines())
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_rb_refuses_non_empty_bucket(s3cmd: S3cmd, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    refused = s3cmd("rb", f"s3://{bucket}", check=False)
    assert refused.returncode != 0
    assert "BucketNotEmpty" in refused.stderr + refused.stdout
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_put_get_round_trip(
    s3cmd: S3cmd, s3: Any, bucket: str, ten_mib_file: Path, tmp_path: Path
) -> None:
    s3cmd("put", str(ten_mib_file), f"s3://{bucket}/dir/ten.bin")
    head = s3.head_object(Bucket=bucket, Key="dir/ten.bin")
    assert head["ContentLength"] == FILE_SIZE
    assert head["ETag"] == f'"{hashlib.md5(ten_mib_file.read_bytes()).hexdigest()}"'

    downloaded = tmp_path / "ten.bin"
    s3cmd("get", f"s3://{bucket}/dir/ten.bin", str(downloaded))
    assert sha256_file(downloaded) == sha256_file(ten_mib_file)

    # --force overwrites; the small replacement is what comes back.
    small = tmp_path / "small.txt"
    small.write_bytes(b"replacement\n")
    s3cmd("put", str(small), f"s3://{bucket}/dir/ten.bin")
    s3cmd("get", "--force", f"s3://{bucket}/dir/ten.bin", str(downloaded))
    assert downloaded.read_bytes() == b"replacement\n"


def test_put_with_multipart_disabled_above_chunk_size(
    s3cmd: S3cmd, s3: Any, bucket: str, tmp_path: Path
) -> None:
    source = write_random(tmp_path / "twenty.bin", 20 * MiB)
    s3cmd("put", "--disable-multipart", str(source), f"s3://{bucket}/twenty.bin")
    got = s3.get_object(Bucket=bucket, Key="twenty.bin")["Body"].read()
    assert hashlib.sha256(got).hexdigest() == sha256_file(source)


def test_ls_lists_prefixes_and_recursive(s3cmd: S3cmd, s3: Any, bucket: str) -> None:
    for key, data in SMALL_TREE.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    top = s3cmd("ls", f"s3://{bucket}/").stdout.splitlines()
    dirs = sorted(line.split()[-1] for line in top if line.strip().startswith("DIR"))
    files = sorted(line.split()[-1] for line in top if not line.strip().startswith("DIR"))
    assert dirs == [f"s3://{bucket}/data/", f"s3://{bucket}/docs/"]
    assert files == [f"s3://{bucket}/empty.dat", f"s3://{bucket}/top.txt"]

    recursive = s3cmd("ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    listed = {}
    for line in recursive:
        # "<date> <time> <size> s3://bucket/key" (keys may contain spaces)
        _date, _time, size, url = line.split(maxsplit=3)
        listed[url.removeprefix(f"s3://{bucket}/")] = int(size)
    assert listed == {key: len(data) for key, data in SMALL_TREE.items()}


def test_sync_up_and_down(s3cmd: S3cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", SMALL_TREE)
    s3cmd("sync", f"{source}/", f"s3://{bucket}/tree/")
    for key, data in SMALL_TREE.items():
        assert s3.get_object(Bucket=bucket, Key=f"tree/{key}")["Body"].read() == data

    target = tmp_path / "dst"
    target.mkdir()
    s3cmd("sync", f"s3://{bucket}/tree/", f"{target}/")
    assert read_tree(target) == SMALL_TREE


def test_del_single_and_recursive(s3cmd: S3cmd, s3: Any, bucket: str) -> None:
    for key in ("keep.txt", "a/one", "a/two", "a/deeper/three"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    single = s3cmd("del", f"s3://{bucket}/keep.txt")
    assert f"delete: 's3://{bucket}/keep.txt'" in single.stdout
    recursive = s3cmd("del", "--recursive", "--force", f"s3://{bucket}/a/")
    assert recursive.stdout.count("delete:") == 3
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0

    missing = s3cmd("get", f"s3://{bucket}/keep.txt", "/dev/null", "--force", check=False)
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr
