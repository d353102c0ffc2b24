"""`lakenode rebuild-index` on a real node's data dir after its SQLite files are deleted.

Method: write through boto3 everything a client can set (content types, user metadata,
checksums, tags, versions, delete markers, a permanent version delete, an unversioned
delete, bucket policy, CORS and versioning, a multipart upload in progress, an access key
made with `lakenode keys create`), record what S3 serves, stop the node, delete meta.db*,
rebuild, start again and compare everything S3 serves; then sign with the created key.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import REGION, NodeProcess
from tests.integration.s3util import MiB, error_of

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::site/public/*"}
    ],
}  # fmt: skip
CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.com"]}]}


def lakenode(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "node", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


def write_everything(s3: Any) -> None:
    s3.create_bucket(Bucket="site")
    s3.put_object(
        Bucket="site", Key="public/page.html", Body=b"<html>hello</html>",
        ContentType="text/html; charset=utf-8", Metadata={"author": "ada", "rev": "7"},
        ChecksumAlgorithm="SHA256", Tagging="team=web&tier=1",
    )  # fmt: skip
    s3.put_object(
        Bucket="site", Key="data/blob.bin", Body=bytes(range(256)) * 40_000,
        ContentType="application/x-blob", ChecksumAlgorithm="SHA1",
        CacheControl="max-age=60", ContentDisposition="attachment",
    )  # fmt: skip
    s3.put_object(Bucket="site", Key="data/blob.bin.tmp", Body=b"scratch")
    s3.delete_object(Bucket="site", Key="data/blob.bin.tmp")  # unversioned delete
    s3.put_object_tagging(
        Bucket="site", Key="data/blob.bin", Tagging={"TagSet": [{"Key": "later", "Value": "x"}]}
    )
    s3.put_bucket_policy(Bucket="site", Policy=json.dumps(POLICY))
    s3.put_bucket_cors(Bucket="site", CORSConfiguration=CORS)

    s3.create_bucket(Bucket="history")
    s3.put_bucket_versioning(Bucket="history", VersioningConfiguration={"Status": "Enabled"})
    for text in (b"v1", b"v2", b"v3"):
        s3.put_object(Bucket="history", Key="doc.txt", Body=text, ContentType="text/plain")
    doomed = s3.put_object(Bucket="history", Key="doc.txt", Body=b"v4 (deleted for good)")
    s3.delete_object(Bucket="history", Key="doc.txt", VersionId=doomed["VersionId"])
    s3.put_object(Bucket="history", Key="gone.txt", Body=b"before the marker")
    s3.delete_object(Bucket="history", Key="gone.txt")  # a delete marker

    upload = s3.create_multipart_upload(
        Bucket="history", Key="big.bin", ContentType="video/mp4", ChecksumAlgorithm="CRC32"
    )
    parts = []
    for number, fill in ((1, b"a"), (2, b"b")):
        body = fill * (5 * MiB if number == 1 else 1000)
        part = s3.upload_part(
            Bucket="history", Key="big.bin", UploadId=upload["UploadId"], PartNumber=number,
            Body=body, ChecksumAlgorithm="CRC32",
        )  # fmt: skip
        parts.append(
            {"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]}
        )
    s3.complete_multipart_upload(
        Bucket="history", Key="big.bin", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )  # fmt: skip
    pending = s3.create_multipart_upload(Bucket="history", Key="pending.bin")
    s3.upload_part(
        Bucket="history", Key="pending.bin", UploadId=pending["UploadId"], PartNumber=1,
        Body=b"p" * 1000,
    )  # fmt: skip


HEAD_FIELDS = (
    "ETag", "ContentType", "ContentLength", "Metadata", "CacheControl", "ContentDisposition",
    "LastModified", "VersionId", "ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC32",
)  # fmt: skip


def served(s3: Any) -> dict[str, Any]:
    """Everything S3 serves about the buckets: versions with bodies, HEAD fields, tags,
    bucket documents, deletes, uploads in progress."""
    state: dict[str, Any] = {"buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]]}
    for bucket in state["buckets"]:
        listing = s3.list_object_versions(Bucket=bucket)
        markers = [
            (m["Key"], m["VersionId"], m["IsLatest"]) for m in listing.get("DeleteMarkers", [])
        ]
        state[f"{bucket} markers"] = markers
        for version in listing.get("Versions", []):
            key, version_id = version["Key"], version["VersionId"]
            ask = {"Bucket": bucket, "Key": key, "VersionId": version_id}
            head = s3.head_object(**ask, ChecksumMode="ENABLED")
            body = s3.get_object(**ask)["Body"].read()
            tags = s3.get_object_tagging(**ask)["TagSet"]
            state[f"{bucket}/{key}@{version_id}"] = {
                "head": {name: head.get(name) for name in HEAD_FIELDS},
                "sha256": hashlib.sha256(body).hexdigest(),
                "tags": sorted((t["Key"], t["Value"]) for t in tags),
                "latest": version["IsLatest"],
            }
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        state[f"{bucket} uploads"] = [(u["Key"], u["UploadId"]) for u in uploads]
        for upload in uploads:
            listed = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            state[f"{bucket} parts {upload['UploadId']}"] = [
                (p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]
            ]
        state[f"{bucket} versioning"] = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        for name, read in (("policy", s3.get_bucket_policy), ("cors", s3.get_bucket_cors)):
            try:
                answer = read(Bucket=bucket)
                state[f"{bucket} {name}"] = answer.get("Policy") or answer.get("CORSRules")
            except ClientError as exc:
                state[f"{bucket} {name}"] = exc.response["Error"]["Code"]
    return state


def test_rebuild_index_restores_everything_s3_serves(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", extra_args=["--segment-size", "4MiB"]).start()
    try:
        s3 = make_client(node.url)
        write_everything(s3)
        made = lakenode("keys", "create", "--data-dir", str(node.data_dir), "--json")
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)
        before = served(s3)
        refused = lakenode("rebuild-index", "--data-dir", str(node.data_dir))
        assert refused.returncode == 1 and "a node is running" in refused.stderr
    finally:
        node.stop()
    healthy = lakenode("rebuild-index", "--data-dir", str(node.data_dir))
    assert healthy.returncode == 1 and "--force" in healthy.stderr, healthy.stderr
    for path in node.data_dir.glob("meta.db*"):
        path.unlink()

    rebuilt = lakenode("rebuild-index", "--data-dir", str(node.data_dir), "--json")

    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert report["buckets"] == 2 and report["keys"] == 1 and report["uploads"] == 1
    assert report["skipped_count"] == 0 and report["records"]["journal"] > 0
    node.start()
    try:
        s3 = make_client(node.url)
        after = served(s3)
        assert after == before
        # What was compared is what was written (not two empty states).
        page = before["site/public/page.html@null"]
        assert page["head"]["Metadata"] == {"author": "ada", "rev": "7"}
        assert page["head"]["ChecksumSHA256"] and page["tags"] == [("team", "web"), ("tier", "1")]
        assert before["site/data/blob.bin@null"]["tags"] == [("later", "x")]
        assert sum(name.startswith("history/doc.txt@") for name in before) == 3
        assert before["history markers"] and before["history uploads"]
        assert before["site policy"] and before["site cors"] and before["history versioning"]
        for bucket, key_name in (("site", "data/blob.bin.tmp"), ("history", "gone.txt")):
            with pytest.raises(ClientError) as deleted:
                s3.get_object(Bucket=bucket, Key=key_name)
            assert error_of(deleted)[0] == 404
        signed = boto3.client(
            "s3", endpoint_url=node.url, region_name=REGION,
            aws_access_key_id=key["access_key"], aws_secret_access_key=key["secret_key"],
        )  # fmt: skip
        signed.create_bucket(Bucket="made-with-the-key")
        signed.put_object(Bucket="made-with-the-key", Key="k", Body=b"signed after the rebuild")
        assert signed.get_object(Bucket="made-with-the-key", Key="k")["Body"].read() == (
            b"signed after the rebuild"
        )
    finally:
        node.stop()
