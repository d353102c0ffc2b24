"""Lifecycle against real nodes with boto3: the configuration calls and their errors,
``x-amz-expiration``, and the worker inside ``lakenode serve`` expiring exactly what the rules
say, surviving kill -9 mid-pass, and acting once across two sites.

Method: nodes run with ``--lifecycle-day-seconds 2`` (a rule's day lasts 2 s, "midnight" is the
next multiple of 2 s) and ``--lifecycle-interval 1s``, so expirations happen within seconds;
each test polls what S3 clients see until the expected state, with a time limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import error_of, expect_error, send
from tests.integration.sites import Sites
from tests.integration.test_admin import cli_json
from tests.integration.test_awscli import api_json, make_aws

LIFECYCLE_ARGS = ["--lifecycle-day-seconds", "2", "--lifecycle-interval", "1s"]
LIMIT_S = 30.0


@pytest.fixture(scope="module")
def fast_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path_factory.mktemp("lifecycle") / "data", extra_args=LIFECYCLE_ARGS)
    yield node.start()
    node.stop()


@pytest.fixture(scope="module")
def s3l(fast_node: NodeProcess) -> Any:
    return make_client(fast_node.url)


@pytest.fixture
def lc_bucket(s3l: Any, request: pytest.FixtureRequest) -> str:
    name = "lc-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]
    s3l.create_bucket(Bucket=name.strip("-"))
    return name.strip("-")


def put_rules(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)}
    )


def wait_for(what: str, check: Callable[[], bool], limit_s: float = LIMIT_S) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def versions(s3: Any, bucket: str, key: str) -> list[tuple[str, bool]]:
    """(version id, is delete marker) of ``key``: its versions newest first, then markers."""
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    rows = [(v["VersionId"], False) for v in page.get("Versions", []) if v["Key"] == key]
    return rows + [(m["VersionId"], True) for m in page.get("DeleteMarkers", []) if m["Key"] == key]


def keys(s3: Any, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


# ---- the configuration ---------------------------------------------------------------------------


def test_put_get_delete_and_errors(fast_node: NodeProcess, s3l: Any, lc_bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3l.get_bucket_lifecycle_configuration(Bucket=lc_bucket)
    assert error_of(excinfo) == (404, "NoSuchLifecycleConfiguration")
    rules = [
        {
            "ID": "logs",
            "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "k", "Value": "v"}]}},
            "Status": "Enabled",
            "Expiration": {"Days": 7},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2},
        },
        {
            "ID": "mpu",
            "Filter": {"Prefix": "tmp/"},
            "Status": "Disabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
    put_rules(s3l, lc_bucket, *rules)
    got = s3l.get_bucket_lifecycle_configuration(Bucket=lc_bucket)["Rules"]
    assert got == rules
    # Errors, with AWS's codes.
    bad_rules: list[tuple[dict[str, Any], str]] = [
        ({"ID": "x", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 0}},
         "InvalidArgument"),
        ({"ID": "x" * 256, "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 1}},
         "InvalidArgument"),
        ({"ID": "x", "Filter": {}, "Status": "Enabled",
          "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}, "InvalidStorageClass"),
        ({"ID": "x", "Filter": {}, "Status": "Enabled"}, "InvalidRequest"),
    ]  # fmt: skip
    for rule, code in bad_rules:
        with pytest.raises(ClientError) as excinfo:
            put_rules(s3l, lc_bucket, rule)
        assert error_of(excinfo) == (400, code), rule
    # Without Content-MD5 or a checksum: refused, as AWS does.
    body = (
        b"<LifecycleConfiguration><Rule><ID>a</ID><Filter/><Status>Enabled</Status>"
        b"<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>"
    )
    expect_error(send(fast_node.url, "PUT", f"/{lc_bucket}", "lifecycle", body=body), 400,
                 "InvalidRequest")  # fmt: skip
    assert s3l.get_bucket_lifecycle_configuration(Bucket=lc_bucket)["Rules"] == rules
    s3l.delete_bucket_lifecycle(Bucket=lc_bucket)
    with pytest.raises(ClientError) as excinfo:
        s3l.get_bucket_lifecycle_configuration(Bucket=lc_bucket)
    assert error_of(excinfo) == (404, "NoSuchLifecycleConfiguration")
    with pytest.raises(ClientError) as excinfo:
        s3l.get_bucket_lifecycle_configuration(Bucket="no-such-bucket-here")
    assert error_of(excinfo) == (404, "NoSuchBucket")


def test_head_and_get_answer_x_amz_expiration(s3l: Any, lc_bucket: str) -> None:
    put_rules(
        s3l,
        lc_bucket,
        {"ID": "far", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 1000}},
    )  # fmt: skip
    s3l.put_object(Bucket=lc_bucket, Key="logs/a", Body=b"x")
    s3l.put_object(Bucket=lc_bucket, Key="data/b", Body=b"x")
    head = s3l.head_object(Bucket=lc_bucket, Key="logs/a")
    assert 'rule-id="far"' in head["Expiration"] and "expiry-date=" in head["Expiration"]
    assert "Expiration" in s3l.get_object(Bucket=lc_bucket, Key="logs/a")
    assert "Expiration" not in s3l.head_object(Bucket=lc_bucket, Key="data/b")


# ---- the worker ---------------------------------------------------------------------------------


def test_objects_expire_as_their_rules_say_and_no_others(s3l: Any, lc_bucket: str) -> None:
    put_rules(
        s3l,
        lc_bucket,
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "tagged", "Filter": {"Tag": {"Key": "tmp", "Value": "yes"}}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "off", "Filter": {"Prefix": "keep/"}, "Status": "Disabled",
         "Expiration": {"Days": 1}},
    )  # fmt: skip
    for key in ("logs/1", "logs/2", "keep/1", "data/1"):
        s3l.put_object(Bucket=lc_bucket, Key=key, Body=b"x")
    s3l.put_object(Bucket=lc_bucket, Key="data/tagged", Body=b"x", Tagging="tmp=yes")
    wait_for("expiry", lambda: keys(s3l, lc_bucket) == {"keep/1", "data/1"})
    time.sleep(5)  # two more days and passes: nothing else goes
    assert keys(s3l, lc_bucket) == {"keep/1", "data/1"}


def test_versions_markers_and_uploads_expire(s3l: Any, lc_bucket: str) -> None:
    s3l.put_bucket_versioning(Bucket=lc_bucket, VersioningConfiguration={"Status": "Enabled"})
    put_rules(
        s3l,
        lc_bucket,
        {"ID": "old", "Filter": {"Prefix": "v/"}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
        {"ID": "markers", "Filter": {"Prefix": "m/"}, "Status": "Enabled",
         "Expiration": {"ExpiredObjectDeleteMarker": True},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "mpu", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    )  # fmt: skip
    written = [s3l.put_object(Bucket=lc_bucket, Key="v/k", Body=bytes([n]))["VersionId"]
               for n in range(4)]  # fmt: skip
    s3l.put_object(Bucket=lc_bucket, Key="m/gone", Body=b"x")
    s3l.delete_object(Bucket=lc_bucket, Key="m/gone")
    s3l.put_object(Bucket=lc_bucket, Key="m/here", Body=b"x")
    stale = s3l.create_multipart_upload(Bucket=lc_bucket, Key="tmp/u")["UploadId"]
    kept = s3l.create_multipart_upload(Bucket=lc_bucket, Key="other/u")["UploadId"]

    def done() -> bool:
        uploads = s3l.list_multipart_uploads(Bucket=lc_bucket).get("Uploads", [])
        return (
            [vid for vid, _m in versions(s3l, lc_bucket, "v/k")] == [written[3], written[2]]
            and versions(s3l, lc_bucket, "m/gone") == []
            and [u["UploadId"] for u in uploads] == [kept]
        )

    wait_for("noncurrent versions, the expired marker and the stale upload", done)
    assert stale != kept
    assert len(versions(s3l, lc_bucket, "m/here")) == 1  # current versions stay


def test_a_locked_version_is_never_expired(s3l: Any) -> None:
    """Noncurrent versions under a hold or a retention outlive their rule; the others go."""
    bucket = "lc-locked"
    s3l.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    put_rules(s3l, bucket, {"ID": "old", "Filter": {"Prefix": ""}, "Status": "Enabled",
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1}})  # fmt: skip
    until = datetime.now(UTC) + timedelta(minutes=10)
    retained = s3l.put_object(
        Bucket=bucket, Key="retained", Body=b"r", ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    held = s3l.put_object(Bucket=bucket, Key="held", Body=b"h", ObjectLockLegalHoldStatus="ON")
    free = s3l.put_object(Bucket=bucket, Key="free", Body=b"f")["VersionId"]
    for key in ("retained", "held", "free"):
        s3l.put_object(Bucket=bucket, Key=key, Body=b"newer")  # the first version is noncurrent

    wait_for("the unlocked noncurrent version", lambda: len(versions(s3l, bucket, "free")) == 1)
    time.sleep(2.5)  # another pass or two after that one
    assert retained in [vid for vid, _marker in versions(s3l, bucket, "retained")]
    assert held["VersionId"] in [vid for vid, _marker in versions(s3l, bucket, "held")]
    assert free not in [vid for vid, _marker in versions(s3l, bucket, "free")]


def test_kill_during_a_pass_loses_nothing_and_the_next_pass_finishes(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "data", extra_args=LIFECYCLE_ARGS).start()
    try:
        s3 = make_client(node.url)
        s3.create_bucket(Bucket="crash")
        s3.put_bucket_versioning(Bucket="crash", VersioningConfiguration={"Status": "Enabled"})
        count = 400  # expired at the pace of 100 a second: a pass lasts about 4 s
        for n in range(count):
            s3.put_object(Bucket="crash", Key=f"logs/{n:04d}", Body=b"x")
        s3.put_object(Bucket="crash", Key="keep", Body=b"x")
        put_rules(s3, "crash", {"ID": "all", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
                                "Expiration": {"Days": 1}})  # fmt: skip

        def visible() -> int:
            return int(s3.list_objects_v2(Bucket="crash", Prefix="logs/")["KeyCount"])

        wait_for("a pass under way", lambda: 0 < visible() < count - 20)
        node.kill()
        node.start()
        wait_for("the pass to finish after the restart", lambda: visible() == 0)
        listed = s3.list_object_versions(Bucket="crash")
        markers = [m["Key"] for m in listed.get("DeleteMarkers", [])]
        objects = [v["Key"] for v in listed.get("Versions", [])]
        # Every object is still there as a noncurrent version, with exactly one marker.
        assert sorted(markers) == [f"logs/{n:04d}" for n in range(count)]
        assert sorted(objects) == ["keep", *sorted(markers)]
        metrics = httpx.get(f"{node.url}/_lakenode/metrics", timeout=10).text
        assert f"lakenode_lifecycle_objects_expired_total {float(count)}" in metrics
        status = cli_json("status", "--data-dir", str(node.data_dir))
        assert status["lifecycle"]["objects_expired"] == count
    finally:
        node.stop()


def test_two_sites_expire_once_and_converge(tmp_path: Path) -> None:
    with Sites(tmp_path, 2, extra_args=LIFECYCLE_ARGS) as sites:
        s0, s1 = sites.client(0), sites.client(1)
        s0.create_bucket(Bucket="shared")
        s0.put_bucket_versioning(Bucket="shared", VersioningConfiguration={"Status": "Enabled"})
        wait_for("the bucket on site 1", lambda: _has_bucket(s1, "shared"))
        for n in range(5):
            s0.put_object(Bucket="shared", Key=f"a/{n}", Body=b"0")
            s1.put_object(Bucket="shared", Key=f"b/{n}", Body=b"1")
        s0.put_object(Bucket="shared", Key="keep", Body=b"x")
        put_rules(
            s0,
            "shared",
            {"ID": "a", "Filter": {"Prefix": "a/"}, "Status": "Enabled",
             "Expiration": {"Days": 1}},
            {"ID": "b", "Filter": {"Prefix": "b/"}, "Status": "Enabled",
             "Expiration": {"Days": 1}},
        )  # fmt: skip
        wait_for("the rules on site 1", lambda: _has_rules(s1, "shared"))

        def expired_everywhere() -> bool:
            return all(keys(client, "shared") == {"keep"} for client in (s0, s1))

        wait_for("every key expired on both sites", expired_everywhere)
        convergence = sites.wait_converged()
        assert convergence.converged, convergence.diff
        for client in (s0, s1):
            listed = client.list_object_versions(Bucket="shared")
            markers = sorted(m["Key"] for m in listed.get("DeleteMarkers", []))
            assert markers == sorted([f"a/{n}" for n in range(5)] + [f"b/{n}" for n in range(5)])


def _has_bucket(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


def _has_rules(client: Any, bucket: str) -> bool:
    try:
        client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError:
        return False
    return True


def test_awscli_puts_and_gets_the_documented_rules(
    fast_node: NodeProcess, s3l: Any, lc_bucket: str, tmp_path: Path
) -> None:
    """The docs/ops.md example, as awscli v1 sends it (Content-MD5, not a checksum)."""
    aws = make_aws(fast_node, tmp_path / "home")
    rules = {
        "Rules": [
            {"ID": "logs-30d", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
             "Expiration": {"Days": 30}},
            {"ID": "old-versions", "Filter": {}, "Status": "Enabled",
             "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3},
             "Expiration": {"ExpiredObjectDeleteMarker": True}},
            {"ID": "stale-uploads", "Filter": {}, "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
        ]
    }  # fmt: skip
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", lc_bucket,
        "--lifecycle-configuration", f"file://{tmp_path / 'rules.json'}")  # fmt: skip
    got = api_json(aws, "get-bucket-lifecycle-configuration", "--bucket", lc_bucket)
    assert got["Rules"] == rules["Rules"]
    aws("s3api", "delete-bucket-lifecycle", "--bucket", lc_bucket)
    missing = aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", lc_bucket, check=False)
    assert missing.returncode != 0 and "NoSuchLifecycleConfiguration" in missing.stderr
