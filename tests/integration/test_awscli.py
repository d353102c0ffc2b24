"""The AWS CLI (v1, ``aws s3`` and ``aws s3api``) as a subprocess against a real node."""

from __future__ import annotations

import hashlib
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
    sha256_file,
    venv_tool,
    write_random,
)
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

AWS = venv_tool("aws")
BIG_SIZE = 50 * MiB
HUGE_SIZE = 200 * MiB
AWSCLI_PART = 8 * MiB  # awscli's default multipart_chunksize

Aws = Callable[..., subprocess.CompletedProcess[str]]


def make_aws(node: NodeProcess, home: Path, config: str = "[default]\n") -> Aws:
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "aws-config"
    config_file.write_text(config)
    credentials_file = home / "aws-credentials"
    credentials_file.write_text("")
    env = base_env(home)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(config_file),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials_file),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_RETRY_MODE="standard",
        AWS_MAX_ATTEMPTS="1",
    )

    def aws(*args: str, check: bool = True, cwd: Path | None = None) -> Any:
        return run([AWS, "--endpoint-url", node.url, *args], env, cwd=cwd, check=check)

    return aws


def api_json(aws: Aws, *args: str) -> Any:
    result = aws("s3api", *args, "--output", "json")
    return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.fixture
def aws(node: NodeProcess, tmp_path: Path) -> Aws:
    return make_aws(node, tmp_path / "aws-home")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random(tmp_path_factory.mktemp("awscli-big") / "big.bin", BIG_SIZE)


def test_mb_ls_rb(aws: Aws, s3: Any) -> None:
    name = "awscli-mb-ls-rb"
    made = aws("s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in made.stdout
    s3.head_bucket(Bucket=name)  # really exists, as seen by another client

    listed = aws("s3", "ls").stdout.splitlines()
    assert any(line.split()[-1] == name for line in listed), listed

    removed = aws("s3", "rb", f"s3://{name}")
    assert f"remove_bucket: {name}" in removed.stdout
    after = aws("s3", "ls").stdout.splitlines()
    assert not any(line.split()[-1] == name for line in after if line.strip())
    assert aws("s3api", "head-bucket", "--bucket", name, check=False).returncode != 0


def test_rb_refuses_non_empty_bucket_then_force_removes(aws: Aws, s3: Any) -> None:
    name = "awscli-rb-force"
    aws("s3", "mb", f"s3://{name}")
    s3.put_object(Bucket=name, Key="a/b.txt", Body=b"keep me")
    refused = aws("s3", "rb", f"s3://{name}", check=False)
    assert refused.returncode != 0
    assert "BucketNotEmpty" in refused.stderr
    assert s3.get_object(Bucket=name, Key="a/b.txt")["Body"].read() == b"keep me"
    aws("s3", "rb", "--force", f"s3://{name}")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert name not in names


def test_cp_50mib_up_and_down(
    node: NodeProcess, tmp_path: Path, bucket: str, big_file: Path
) -> None:
    # awscli's defaults: a 50 MiB file goes up as a multipart upload (8 MiB parts).
    aws = make_aws(node, tmp_path / "aws-home")
    aws("s3", "cp", str(big_file), f"s3://{bucket}/dir/big.bin")

    head = api_json(aws, "head-object", "--bucket", bucket, "--key", "dir/big.bin")
    assert head["ContentLength"] == BIG_SIZE
    data = big_file.read_bytes()
    part = 8 * MiB  # awscli's default multipart_chunksize
    part_md5s = b"".join(
        hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)
    )
    parts = -(-len(data) // part)
    assert head["ETag"] == f'"{hashlib.md5(part_md5s).hexdigest()}-{parts}"'

    downloaded = tmp_path / "down" / "big.bin"
    aws("s3", "cp", f"s3://{bucket}/dir/big.bin", str(downloaded))
    assert downloaded.stat().st_size == BIG_SIZE
    assert sha256_file(downloaded) == sha256_file(big_file)


@pytest.fixture(scope="module")
def huge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random(tmp_path_factory.mktemp("awscli-huge") / "huge.bin", HUGE_SIZE)


def multipart_etag_of(path: Path, part_size: int) -> str:
    """S3's multipart ETag of a file uploaded in ``part_size`` parts, computed locally."""
    digests = bytearray()
    parts = 0
    with path.open("rb") as handle:
        while piece := handle.read(part_size):
            digests += hashlib.md5(piece).digest()
            parts += 1
    return f'"{hashlib.md5(digests).hexdigest()}-{parts}"'


def test_cp_200mib_multipart_up_and_down(
    node: NodeProcess, tmp_path: Path, bucket: str, huge_file: Path
) -> None:
    aws = make_aws(node, tmp_path / "aws-home")
    aws("s3", "cp", str(huge_file), f"s3://{bucket}/huge.bin")

    head = api_json(aws, "head-object", "--bucket", bucket, "--key", "huge.bin")
    assert head["ContentLength"] == HUGE_SIZE
    assert head["ETag"] == multipart_etag_of(huge_file, AWSCLI_PART)
    assert head["ETag"].endswith(f'-{HUGE_SIZE // AWSCLI_PART}"')
    listed = api_json(aws, "list-multipart-uploads", "--bucket", bucket)
    assert not listed.get("Uploads")  # completed, nothing left behind

    downloaded = tmp_path / "down" / "huge.bin"
    aws("s3", "cp", f"s3://{bucket}/huge.bin", str(downloaded))
    assert downloaded.stat().st_size == HUGE_SIZE
    assert sha256_file(downloaded) == sha256_file(huge_file)


def test_ls_buckets_and_recursive(aws: Aws, s3: Any, bucket: str) -> None:
    for key, data in SMALL_TREE.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    assert any(line.split()[-1] == bucket for line in aws("s3", "ls").stdout.splitlines())

    top = aws("s3", "ls", f"s3://{bucket}/").stdout.splitlines()
    prefixes = sorted(line.split()[-1] for line in top if line.strip().startswith("PRE"))
    files = sorted(line.split()[-1] for line in top if not line.strip().startswith("PRE"))
    assert prefixes == ["data/", "docs/"]
    assert files == ["empty.dat", "top.txt"]

    recursive = aws("s3", "ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    # "<date> <time> <size> <key>"; keys may contain spaces.
    listed = {}
    for line in recursive:
        _date, _time, size, key = line.split(maxsplit=3)
        listed[key] = int(size)
    assert listed == {key: len(data) for key, data in SMALL_TREE.items()}


def test_sync_both_ways_and_second_sync_is_a_no_op(
    aws: Aws, s3: Any, bucket: str, tmp_path: Path
) -> None:
    source = make_tree(tmp_path / "src", SMALL_TREE)
    first = aws("s3", "sync", str(source), f"s3://{bucket}/tree")
    assert first.stdout.count("upload:") == len(SMALL_TREE)
    for key, data in SMALL_TREE.items():
        assert s3.get_object(Bucket=bucket, Key=f"tree/{key}")["Body"].read() == data

    again = aws("s3", "sync", str(source), f"s3://{bucket}/tree")
    assert again.stdout.strip() == ""

    target = tmp_path / "dst"
    down = aws("s3", "sync", f"s3://{bucket}/tree", str(target))
    assert down.stdout.count("download:") == len(SMALL_TREE)
    assert read_tree(target) == SMALL_TREE

    down_again = aws("s3", "sync", f"s3://{bucket}/tree", str(target))
    assert down_again.stdout.strip() == ""

    # A changed file is the only one copied by the next sync.
    (source / "docs" / "readme.md").write_bytes(b"changed and longer than before\n" * 20)
    changed = aws("s3", "sync", str(source), f"s3://{bucket}/tree")
    assert changed.stdout.count("upload:") == 1
    assert "docs/readme.md" in changed.stdout
    got = s3.get_object(Bucket=bucket, Key="tree/docs/readme.md")["Body"].read()
    assert got == b"changed and longer than before\n" * 20


def test_rm_single_and_recursive(aws: Aws, s3: Any, bucket: str) -> None:
    for key in ("keep.txt", "a/one", "a/two", "a/deeper/three", "ab/not-under-a"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    single = aws("s3", "rm", f"s3://{bucket}/a/one")
    assert f"delete: s3://{bucket}/a/one" in single.stdout

    recursive = aws("s3", "rm", "--recursive", f"s3://{bucket}/a/")
    assert recursive.stdout.count("delete:") == 2

    remaining = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["ab/not-under-a", "keep.txt"]


def test_s3api_put_head_get_object(aws: Aws, bucket: str, tmp_path: Path) -> None:
    body = tmp_path / "payload.bin"
    body.write_bytes(b"hello from s3api\n" * 1000)
    put = api_json(
        aws,
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "docs/p.bin",
        "--body",
        str(body),
        "--content-type",
        "application/x-test",
        "--metadata",
        "colour=blue,Owner=ann",
    )
    expected_etag = f'"{hashlib.md5(body.read_bytes()).hexdigest()}"'
    assert put["ETag"] == expected_etag

    head = api_json(aws, "head-object", "--bucket", bucket, "--key", "docs/p.bin")
    assert head["ContentLength"] == body.stat().st_size
    assert head["ETag"] == expected_etag
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"colour": "blue", "owner": "ann"}

    out = tmp_path / "out.bin"
    got = api_json(aws, "get-object", "--bucket", bucket, "--key", "docs/p.bin", str(out))
    assert got["ContentLength"] == body.stat().st_size
    assert got["ETag"] == expected_etag
    assert out.read_bytes() == body.read_bytes()

    missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr


def test_s3api_list_objects_v2_prefix_and_delimiter(aws: Aws, s3: Any, bucket: str) -> None:
    keys = [
        "photos/2023/a.jpg",
        "photos/2023/b.jpg",
        "photos/2024/c.jpg",
        "photos/d.jpg",
        "videos/e.mp4",
        "root.txt",
    ]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())

    listed = api_json(
        aws, "list-objects-v2", "--bucket", bucket, "--prefix", "photos/", "--delimiter", "/"
    )
    assert [o["Key"] for o in listed["Contents"]] == ["photos/d.jpg"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["photos/2023/", "photos/2024/"]

    top = api_json(aws, "list-objects-v2", "--bucket", bucket, "--delimiter", "/")
    assert [o["Key"] for o in top["Contents"]] == ["root.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["photos/", "videos/"]

    flat = api_json(aws, "list-objects-v2", "--bucket", bucket, "--prefix", "photos/2023/")
    assert [(o["Key"], o["Size"]) for o in flat["Contents"]] == [
        ("photos/2023/a.jpg", len("photos/2023/a.jpg")),
        ("photos/2023/b.jpg", len("photos/2023/b.jpg")),
    ]

    # The CLI follows continuation tokens itself when pages are small.
    paged = api_json(aws, "list-objects-v2", "--bucket", bucket, "--page-size", "2")
    assert [o["Key"] for o in paged["Contents"]] == sorted(keys)


def test_s3api_delete_objects(aws: Aws, s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = api_json(
        aws,
        "delete-objects",
        "--bucket",
        bucket,
        "--delete",
        json.dumps({"Objects": [{"Key": "a"}, {"Key": "c"}, {"Key": "absent"}]}),
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "absent", "c"]
    assert "Errors" not in result
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]


def test_s3api_head_bucket_and_location(aws: Aws, bucket: str) -> None:
    assert aws("s3api", "head-bucket", "--bucket", bucket).returncode == 0
    location = api_json(aws, "get-bucket-location", "--bucket", bucket)
    assert location == {"LocationConstraint": None}

    missing = aws("s3api", "head-bucket", "--bucket", "no-such-bucket-here", check=False)
    assert missing.returncode != 0
    assert "404" in missing.stderr
    missing_location = aws(
        "s3api", "get-bucket-location", "--bucket", "no-such-bucket-here", check=False
    )
    assert missing_location.returncode != 0
    assert "NoSuchBucket" in missing_location.stderr
