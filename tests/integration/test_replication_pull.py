"""Pull replication between real nodes: A and B each started with the other as ``--peer``.

Method: write through boto3 to one node, poll the other until what it serves (every version's
id, ETag, size and last-modified, the bytes of every current object, tags, the bucket policy,
versioning) equals the writer's, within a bounded time. Loops are checked through the nodes'
own ``/_lakenode/repl/info``: after convergence neither change log grows. The replication
endpoints' authentication is checked with keys made by ``lakenode keys create``, and the
one-shot ``lakenode repl pull`` on a stopped data dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_canonical import EMPTY_SHA256
from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess, two_way_pair

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONVERGE_LIMIT_S = 30.0
MiB = 1 << 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a, b = two_way_pair(tmp_path_factory.mktemp("repl"))
    yield a, b
    b.stop()
    a.stop()


def repl_get(url: str, path: str, access_key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> Any:
    full = f"{url}/_lakenode/repl/{path}"
    headers = sign_headers("GET", full, {}, access_key, secret, REGION, EMPTY_SHA256)
    return httpx.get(full, headers=headers, timeout=10)


def last_seq(node: NodeProcess) -> int:
    answer = repl_get(node.url, "info")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["last_seq"])


def snapshot(client: Any, buckets: list[str]) -> dict[str, Any]:
    """Everything S3 shows of ``buckets`` that replication must carry, comparable with ==."""
    return {bucket: bucket_state(client, bucket) for bucket in buckets}


def bucket_state(client: Any, bucket: str) -> Any:
    """The bucket's state, or the error code met reading it (NoSuchBucket before it arrives,
    NoSuchVersion when a version listed is replaced by replication before it is read)."""
    try:
        return read_bucket(client, bucket)
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def read_bucket(client: Any, bucket: str) -> dict[str, Any]:
    listing = client.list_object_versions(Bucket=bucket)
    versions = [
        (v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"], str(v["LastModified"]))
        for v in listing.get("Versions", [])
    ]
    markers = [
        (m["Key"], m["VersionId"], m["IsLatest"], str(m["LastModified"]))
        for m in listing.get("DeleteMarkers", [])
    ]
    current = {}
    for key, version_id, etag, *_rest in versions:
        body = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
        tags = client.get_object_tagging(Bucket=bucket, Key=key, VersionId=version_id)
        current[(key, version_id)] = (etag, hashlib.sha256(body).hexdigest(), tags["TagSet"])
    return {
        "versions": versions,
        "markers": markers,
        "objects": current,
        "policy": policy_of(client, bucket),
        "versioning": client.get_bucket_versioning(Bucket=bucket).get("Status"),
    }


def policy_of(client: Any, bucket: str) -> Any:
    try:
        return json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def converge(read: Callable[[], Any], expected: Any, limit_s: float = CONVERGE_LIMIT_S) -> float:
    """Poll until ``read()`` equals ``expected``; how long it took (fail with the difference)."""
    started = time.monotonic()
    while (seen := read()) != expected:
        if time.monotonic() - started > limit_s:
            assert seen == expected, f"not converged after {limit_s} s"
        time.sleep(0.1)
    return time.monotonic() - started


def write_workload(s3: Any, prefix: str) -> list[str]:
    """Buckets with every kind of change the S3 API can make; returns their names."""
    plain, versioned, doomed = f"{prefix}-plain", f"{prefix}-versioned", f"{prefix}-doomed"
    for name in (plain, versioned, doomed):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=plain, Key="big", Body=os.urandom(9 * MiB))  # three 4 MiB chunks
    s3.put_object(Bucket=plain, Key="over", Body=b"first")
    s3.put_object(Bucket=plain, Key="over", Body=b"second", ContentType="text/plain")
    s3.put_object(Bucket=plain, Key="gone", Body=b"deleted soon")
    s3.delete_object(Bucket=plain, Key="gone")
    s3.put_object(Bucket=plain, Key="dir/ключ 🙂", Body=b"unicode key", Metadata={"m": "v"})
    s3.put_object_tagging(
        Bucket=plain, Key="over", Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]}
    )
    upload = s3.create_multipart_upload(Bucket=plain, Key="multi")["UploadId"]
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(Bucket=plain, Key="multi", UploadId=upload,
                                                 PartNumber=n, Body=os.urandom(5 * MiB))["ETag"]}
        for n in (1, 2)
    ]  # fmt: skip
    s3.complete_multipart_upload(
        Bucket=plain, Key="multi", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{plain}/public/*"}],
    }  # fmt: skip
    s3.put_bucket_policy(Bucket=plain, Policy=json.dumps(policy))
    s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=versioned, Key="doc", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=versioned, Key="doc", Body=b"v2")
    s3.put_object(Bucket=versioned, Key="doc", Body=b"v3")
    s3.delete_object(Bucket=versioned, Key="doc")  # a delete marker on top
    s3.delete_object(Bucket=versioned, Key="doc", VersionId=first)  # v1 removed for good
    s3.put_object(Bucket=versioned, Key="other", Body=b"x")
    s3.delete_object(Bucket=versioned, Key="other")
    s3.delete_bucket(Bucket=doomed)
    return [plain, versioned, doomed]


def test_writes_on_a_replicate_to_b(pair: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = pair
    s3a, s3b = make_client(a.url), make_client(b.url)
    buckets = write_workload(s3a, "from-a")
    expected = snapshot(s3a, buckets)
    assert expected[buckets[2]] == "NoSuchBucket"
    assert len(expected[buckets[1]]["markers"]) == 2
    converge(lambda: snapshot(s3b, buckets), expected)
    # Same bytes, and deletes stay deleted (nothing comes back from B to A or later on B).
    big_a = s3a.get_object(Bucket=buckets[0], Key="big")
    big_b = s3b.get_object(Bucket=buckets[0], Key="big")
    assert big_b["ETag"] == big_a["ETag"] and big_b["Body"].read() == big_a["Body"].read()
    time.sleep(1.0)
    assert snapshot(s3a, buckets) == snapshot(s3b, buckets) == expected
    with pytest.raises(ClientError):
        s3b.head_object(Bucket=buckets[0], Key="gone")


def test_writes_on_b_replicate_to_a_without_echo(pair: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = pair
    s3a, s3b = make_client(a.url), make_client(b.url)
    buckets = write_workload(s3b, "from-b")
    expected = snapshot(s3b, buckets)
    converge(lambda: snapshot(s3a, buckets), expected)
    # Converged: each log holds the other's changes once and nothing more arrives.
    seqs = (last_seq(a), last_seq(b))
    time.sleep(1.5)  # several pull rounds in each direction
    assert (last_seq(a), last_seq(b)) == seqs
    assert snapshot(s3a, buckets) == snapshot(s3b, buckets)


def test_concurrent_writes_on_both_converge(pair: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = pair
    s3a, s3b = make_client(a.url), make_client(b.url)
    s3a.create_bucket(Bucket="both-ways")
    converge(lambda: bucket_state(s3b, "both-ways") != "NoSuchBucket", True)
    for i in range(5):
        s3a.put_object(Bucket="both-ways", Key=f"k{i}", Body=f"a{i}".encode())
        s3b.put_object(Bucket="both-ways", Key=f"k{i}", Body=f"b{i}".encode())
    s3b.delete_object(Bucket="both-ways", Key="k0")
    # Both sides move while converging: compare fresh reads of each until they agree.
    converge(lambda: bucket_state(s3a, "both-ways") == bucket_state(s3b, "both-ways"), True)
    final = bucket_state(s3a, "both-ways")
    assert isinstance(final, dict) and len(final["objects"]) >= 4
    time.sleep(1.0)
    assert bucket_state(s3a, "both-ways") == bucket_state(s3b, "both-ways") == final


def keys_create(data_dir: Path, *args: str) -> None:
    command = [sys.executable, "-m", "node", "keys", "create", *args, "--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_replication_endpoints_need_a_replication_key(
    pair: tuple[NodeProcess, NodeProcess],
) -> None:
    a, _b = pair
    keys_create(a.data_dir, "--access-key", "plain-key", "--secret-key", "plain-secret-123")
    keys_create(
        a.data_dir, "--access-key", "repl-key", "--secret-key", "repl-secret-123", "--replication"
    )
    converge(lambda: repl_get(a.url, "changes", "repl-key", "repl-secret-123").status_code, 200, 5)
    allowed = repl_get(a.url, "changes?after=0&limit=5", "repl-key", "repl-secret-123")
    assert allowed.json()["node_id"] == "node-a" and len(allowed.json()["changes"]) == 5
    ordinary = repl_get(a.url, "changes", "plain-key", "plain-secret-123")
    assert ordinary.status_code == 403 and ordinary.json()["error"] == "AccessDenied"
    unsigned = httpx.get(f"{a.url}/_lakenode/repl/changes", timeout=10)
    assert unsigned.status_code == 403 and unsigned.json()["error"] == "AccessDenied"
    wrong = repl_get(a.url, "info", "repl-key", "not-the-secret")
    assert wrong.status_code == 403 and "SignatureDoesNotMatch" in wrong.json()["message"]
    assert repl_get(a.url, "info").status_code == 200  # the root key


def test_one_shot_pull_cli(
    pair: tuple[NodeProcess, NodeProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    a, _b = pair
    s3a = make_client(a.url)
    buckets = write_workload(s3a, "cli")
    c = NodeProcess(tmp_path_factory.mktemp("repl-cli") / "c", extra_args=["--node-id", "node-c"])
    c.start()
    refused = repl_pull(c.data_dir, a.url)  # the running node holds its data dir
    assert refused.returncode == 1 and "in use" in refused.stderr, refused.stderr
    c.stop()
    done = repl_pull(c.data_dir, a.url)
    assert done.returncode == 0, done.stderr
    assert "caught up" in done.stdout and "node node-a" in done.stdout
    again = repl_pull(c.data_dir, a.url)
    assert again.returncode == 0 and " 0 applied" in again.stdout, again.stdout
    c.start()
    try:
        assert snapshot(make_client(c.url), buckets) == snapshot(s3a, buckets)
    finally:
        c.stop()
    down = repl_pull(c.data_dir, "http://127.0.0.1:1")
    assert down.returncode == 1 and "PeerUnavailable" in down.stderr


def repl_pull(data_dir: Path, peer: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "node", "repl", "pull", "--peer", peer, "--data-dir", str(data_dir),
        "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
