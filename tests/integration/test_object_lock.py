"""Object lock on one node, through boto3 (and awscli for the Veeam-style flow).

Every operation (Get/PutObjectLockConfiguration, Get/PutObjectRetention, Get/PutObjectLegalHold,
CreateBucket with lock), every x-amz-object-lock-* header on PutObject, CopyObject and
CreateMultipartUpload, HEAD/GET's lock headers, and each error code AWS documents for them;
deletes of locked versions refused (DeleteObject with a versionId, DeleteObjects) until the
retention passes and no hold is on; the governance bypass only for a key allowed it.
Time passes for the Veeam-style flow by restarting its node with LAKENODE_CLOCK_OFFSET_MS.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import MiB, error_of, expect_error, headers_of, send
from tests.integration.sites import SiteProcess
from tests.integration.test_access_control import Key
from tests.integration.test_access_control import make_key as make_key  # the fixture
from tests.integration.test_awscli import api_json, make_aws

LOCK_XML = (
    b'<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<ObjectLockEnabled>Enabled</ObjectLockEnabled>%s</ObjectLockConfiguration>"
)


def ahead(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def refused(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as excinfo:
        call(**kwargs)
    return error_of(excinfo)


@pytest.fixture
def locked(s3: Any, bucket: str) -> str:
    """A fresh bucket created with object lock enabled (beside the plain ``bucket``)."""
    name = f"{bucket[:50]}-lk"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def put_locked(s3: Any, bucket: str, key: str, mode: str, until: datetime, **extra: Any) -> str:
    written = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"backup " + key.encode(),
        ObjectLockMode=mode,
        ObjectLockRetainUntilDate=until,
        **extra,
    )
    return str(written["VersionId"])


def md5_header(body: bytes) -> dict[str, str]:
    return {"content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()}


# ---- bucket configuration ----------------------------------------------------------------------


def test_create_bucket_with_lock_turns_versioning_on_for_good(s3: Any, locked: str) -> None:
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}
    assert refused(
        s3.put_bucket_versioning, Bucket=locked, VersioningConfiguration={"Status": "Suspended"}
    ) == (409, "InvalidBucketState")
    s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Enabled"})


def test_lock_configuration_on_an_existing_versioned_bucket(s3: Any, bucket: str) -> None:
    assert refused(s3.get_object_lock_configuration, Bucket=bucket) == (
        404,
        "ObjectLockConfigurationNotFoundError",
    )
    enabled = {"ObjectLockEnabled": "Enabled"}
    assert refused(
        s3.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration=enabled
    ) == (409, "InvalidBucketState")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for retention in ({"Mode": "GOVERNANCE", "Days": 1}, {"Mode": "COMPLIANCE", "Years": 2}):
        config = {**enabled, "Rule": {"DefaultRetention": retention}}
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=config)
        got = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        assert got == config
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=enabled)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == enabled


@pytest.mark.parametrize(
    ("rule", "status", "code"),
    [
        (b"<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>"
         b"</DefaultRetention></Rule>", 400, "MalformedXML"),
        (b"<Rule><DefaultRetention><Mode>GOVERNANCE</Mode></DefaultRetention></Rule>",
         400, "MalformedXML"),
        (b"<Rule><DefaultRetention><Mode>FOREVER</Mode><Days>1</Days></DefaultRetention></Rule>",
         400, "MalformedXML"),
        (b"<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>0</Days></DefaultRetention>"
         b"</Rule>", 400, "InvalidArgument"),
        (b"<Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>101</Years></DefaultRetention>"
         b"</Rule>", 400, "InvalidArgument"),
        (b"<Rule></Rule>", 400, "MalformedXML"),
    ],
)  # fmt: skip
def test_lock_configuration_validation(
    node: NodeProcess, locked: str, rule: bytes, status: int, code: str
) -> None:
    body = LOCK_XML % rule
    response = send(node.url, "PUT", f"/{locked}", "object-lock=", md5_header(body), body)
    expect_error(response, status, code)


def test_lock_calls_need_content_md5_or_a_checksum(node: NodeProcess, locked: str) -> None:
    body = LOCK_XML % b""
    unsigned = "UNSIGNED-PAYLOAD"  # a signed payload SHA-256 would count as the check
    expect_error(
        send(node.url, "PUT", f"/{locked}", "object-lock=", {}, body, unsigned),
        400,
        "InvalidRequest",
    )
    disabled = body.replace(b">Enabled<", b">Disabled<")
    response = send(node.url, "PUT", f"/{locked}", "object-lock=", md5_header(disabled), disabled)
    expect_error(response, 400, "MalformedXML")
    headers = {"x-amz-object-lock-legal-hold": "ON"}
    response = send(node.url, "PUT", f"/{locked}/k", "", headers, b"data", unsigned)
    expect_error(response, 400, "InvalidRequest")
    response = send(
        node.url,
        "PUT",
        f"/{locked}/k",
        "",
        {**headers, **md5_header(b"data")},
        b"data",
        unsigned,
    )
    assert response.status_code == 200, response.text
    # A signed payload SHA-256 is verified before the commit: it counts (minio-py over HTTP).
    response = send(node.url, "PUT", f"/{locked}/k", "", headers, b"data")
    assert response.status_code == 200, response.text
    hold = b"<LegalHold><Status>OFF</Status></LegalHold>"
    expect_error(
        send(node.url, "PUT", f"/{locked}/k", "legal-hold=", {}, hold, unsigned),
        400,
        "InvalidRequest",
    )
    response = send(node.url, "PUT", f"/{locked}/k", "legal-hold=", md5_header(hold), hold)
    assert response.status_code == 200, response.text


# ---- lock settings on writes, lock headers on reads --------------------------------------------


def test_put_object_lock_headers_and_what_head_and_get_answer(s3: Any, locked: str) -> None:
    until = ahead(3600).replace(microsecond=0)
    version = put_locked(s3, locked, "k", "COMPLIANCE", until, ObjectLockLegalHoldStatus="ON")
    for read in (s3.head_object, s3.get_object):
        got = read(Bucket=locked, Key="k", VersionId=version)
        assert got["ObjectLockMode"] == "COMPLIANCE"
        assert got["ObjectLockRetainUntilDate"] == until
        assert got["ObjectLockLegalHoldStatus"] == "ON"
    retention = s3.get_object_retention(Bucket=locked, Key="k")["Retention"]
    assert retention == {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    hold = s3.get_object_legal_hold(Bucket=locked, Key="k", VersionId=version)["LegalHold"]
    assert hold == {"Status": "ON"}
    s3.put_object(Bucket=locked, Key="plain", Body=b"x")
    plain = headers_of(s3.head_object(Bucket=locked, Key="plain"))
    assert not any(name.startswith("x-amz-object-lock") for name in plain)
    assert refused(s3.get_object_retention, Bucket=locked, Key="plain") == (
        404,
        "NoSuchObjectLockConfiguration",
    )
    assert refused(s3.get_object_legal_hold, Bucket=locked, Key="plain")[1] == (
        "NoSuchObjectLockConfiguration"
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"ObjectLockMode": "COMPLIANCE"}, "InvalidArgument"),
        ({"ObjectLockRetainUntilDate": "2099-01-01T00:00:00Z"}, "InvalidArgument"),
        ({"ObjectLockMode": "FOREVER", "ObjectLockRetainUntilDate": "2099-01-01T00:00:00Z"},
         "InvalidArgument"),
        ({"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": "2000-01-01T00:00:00Z"},
         "InvalidArgument"),
        ({"ObjectLockLegalHoldStatus": "MAYBE"}, "InvalidArgument"),
    ],
)  # fmt: skip
def test_lock_headers_are_validated(
    s3: Any, locked: str, headers: dict[str, str], code: str
) -> None:
    assert refused(s3.put_object, Bucket=locked, Key="k", Body=b"x", **headers) == (400, code)
    assert refused(s3.head_object, Bucket=locked, Key="k")[0] == 404


def test_lock_settings_need_a_bucket_with_lock(s3: Any, bucket: str) -> None:
    lock = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": ahead(60)}
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"x", **lock) == (
        400,
        "InvalidRequest",
    )
    assert (
        refused(s3.create_multipart_upload, Bucket=bucket, Key="m", **lock)[1] == "InvalidRequest"
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert refused(
        s3.put_object_legal_hold, Bucket=bucket, Key="k", LegalHold={"Status": "ON"}
    ) == (400, "InvalidRequest")
    assert refused(s3.get_object_retention, Bucket=bucket, Key="k") == (400, "InvalidRequest")


def test_copy_and_multipart_carry_their_own_lock(s3: Any, locked: str) -> None:
    until = ahead(3600).replace(microsecond=0)
    s3.put_object(Bucket=locked, Key="src", Body=b"source")
    copied = s3.copy_object(
        Bucket=locked,
        Key="dst",
        CopySource={"Bucket": locked, "Key": "src"},
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    head = s3.head_object(Bucket=locked, Key="dst", VersionId=copied["VersionId"])
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)
    assert "ObjectLockMode" not in s3.head_object(Bucket=locked, Key="src")
    upload = s3.create_multipart_upload(
        Bucket=locked, Key="mpu", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
        ObjectLockLegalHoldStatus="ON",
    )["UploadId"]  # fmt: skip
    parts = []
    for number, data in enumerate((b"a" * 5 * MiB, b"tail"), start=1):
        part = s3.upload_part(
            Bucket=locked, Key="mpu", UploadId=upload, PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    done = s3.complete_multipart_upload(
        Bucket=locked, Key="mpu", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    head = s3.head_object(Bucket=locked, Key="mpu", VersionId=done["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    assert not any(name.startswith("x-lakenode") for name in headers_of(head))
    assert refused(s3.delete_object, Bucket=locked, Key="mpu", VersionId=done["VersionId"]) == (
        403,
        "AccessDenied",
    )


def test_the_default_retention_applies_to_new_versions(s3: Any, locked: str) -> None:
    rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
    s3.put_object_lock_configuration(
        Bucket=locked, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule}
    )
    before = datetime.now(UTC)
    version = s3.put_object(Bucket=locked, Key="k", Body=b"x")["VersionId"]
    retention = s3.get_object_retention(Bucket=locked, Key="k", VersionId=version)["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    expected = before + timedelta(days=1)
    assert abs((retention["RetainUntilDate"] - expected).total_seconds()) < 60
    assert refused(s3.delete_object, Bucket=locked, Key="k", VersionId=version)[1] == "AccessDenied"
    s3.delete_object(Bucket=locked, Key="k", VersionId=version, BypassGovernanceRetention=True)


# ---- retention and legal hold changes ----------------------------------------------------------


def test_compliance_is_only_extended_by_anyone(s3: Any, locked: str) -> None:
    until = ahead(3600).replace(microsecond=0)
    version = put_locked(s3, locked, "k", "COMPLIANCE", until)
    for retention in (
        {"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(seconds=60)},
        {"Mode": "GOVERNANCE", "RetainUntilDate": until + timedelta(days=1)},
    ):
        assert refused(
            s3.put_object_retention, Bucket=locked, Key="k", VersionId=version,
            Retention=retention, BypassGovernanceRetention=True,
        ) == (403, "AccessDenied")  # fmt: skip
    assert refused(
        s3.put_object_retention, Bucket=locked, Key="k", Retention={},
        BypassGovernanceRetention=True,
    ) == (403, "AccessDenied")  # fmt: skip
    later = until + timedelta(days=30)
    s3.put_object_retention(
        Bucket=locked, Key="k", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later}
    )
    got = s3.get_object_retention(Bucket=locked, Key="k", VersionId=version)["Retention"]
    assert got == {"Mode": "COMPLIANCE", "RetainUntilDate": later}


def test_governance_yields_to_the_bypass_permission_only(
    s3: Any, locked: str, make_key: Any, tmp_path: Path
) -> None:
    version = put_locked(s3, locked, "k", "GOVERNANCE", ahead(3600))
    shorter = {"Mode": "GOVERNANCE", "RetainUntilDate": ahead(1800)}
    args = {"Bucket": locked, "Key": "k", "VersionId": version}
    assert refused(s3.put_object_retention, **args, Retention=shorter) == (403, "AccessDenied")
    actions = [
        "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion",
        "s3:PutObjectRetention", "s3:GetObjectRetention",
    ]  # fmt: skip
    statement = {"Effect": "Allow", "Action": actions, "Resource": "arn:aws:s3:::*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy))
    key: Key = make_key("nobypass", "--policy", str(policy_file))
    try:
        _bypass_refused_to(key, args, shorter)
    finally:
        key.client.close()
    s3.put_object_retention(**args, Retention=shorter, BypassGovernanceRetention=True)
    s3.put_object_retention(**args, Retention={}, BypassGovernanceRetention=True)
    assert refused(s3.get_object_retention, **args)[1] == "NoSuchObjectLockConfiguration"
    s3.delete_object(**args)


def _bypass_refused_to(key: Key, args: dict[str, str], shorter: dict[str, Any]) -> None:
    assert key.client.get_object_retention(**args)["Retention"]["Mode"] == "GOVERNANCE"
    assert refused(key.client.delete_object, **args, BypassGovernanceRetention=True) == (
        403,
        "AccessDenied",
    )
    assert refused(
        key.client.put_object_retention, **args, Retention=shorter, BypassGovernanceRetention=True
    ) == (403, "AccessDenied")


def test_a_legal_hold_blocks_every_delete_until_lifted(s3: Any, locked: str) -> None:
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    version = s3.put_object_legal_hold(
        Bucket=locked, Key="k", LegalHold={"Status": "ON"}
    )  # the latest version
    del version
    listed = s3.list_object_versions(Bucket=locked, Prefix="k")["Versions"]
    version_id = listed[0]["VersionId"]
    args = {"Bucket": locked, "Key": "k", "VersionId": version_id}
    assert s3.get_object_legal_hold(**args)["LegalHold"]["Status"] == "ON"
    assert refused(s3.delete_object, **args, BypassGovernanceRetention=True)[1] == "AccessDenied"
    s3.put_object_legal_hold(**args, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(**args)["LegalHold"]["Status"] == "OFF"
    assert s3.head_object(**args)["ObjectLockLegalHoldStatus"] == "OFF"
    s3.delete_object(**args)


def test_lock_calls_on_what_is_not_a_locked_version(s3: Any, locked: str) -> None:
    hold = {"Status": "ON"}
    assert refused(s3.put_object_legal_hold, Bucket=locked, Key="none", LegalHold=hold) == (
        404,
        "NoSuchKey",
    )
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    assert refused(
        s3.put_object_legal_hold, Bucket=locked, Key="k", VersionId="nope", LegalHold=hold
    ) == (404, "NoSuchVersion")
    marker = s3.delete_object(Bucket=locked, Key="k")["VersionId"]
    assert refused(
        s3.put_object_legal_hold, Bucket=locked, Key="k", VersionId=marker, LegalHold=hold
    ) == (405, "MethodNotAllowed")
    assert refused(
        s3.put_object_retention, Bucket=locked, Key="k", VersionId=marker,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": ahead(60)},
    ) == (405, "MethodNotAllowed")  # fmt: skip
    assert refused(
        s3.put_object_retention, Bucket=locked, Key="k",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime(2000, 1, 1, tzinfo=UTC)},
    ) == (400, "InvalidArgument")  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b"<Retention><Mode>FOREVER</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate>"
     b"</Retention>",
     b"<Retention><Mode>GOVERNANCE</Mode></Retention>",
     b"<LegalHold><Status>MAYBE</Status></LegalHold>",
     b"<Nonsense/>"],
)  # fmt: skip
def test_malformed_lock_documents(node: NodeProcess, s3: Any, locked: str, body: bytes) -> None:
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    query = "legal-hold=" if body.startswith(b"<LegalHold") else "retention="
    response = send(node.url, "PUT", f"/{locked}/k", query, md5_header(body), body)
    expect_error(response, 400, "MalformedXML")


# ---- deletes -------------------------------------------------------------------------------------


def test_deletes_of_locked_versions_are_refused_and_markers_still_made(
    s3: Any, locked: str
) -> None:
    versions = [put_locked(s3, locked, f"k{n}", "COMPLIANCE", ahead(3600)) for n in range(2)]
    s3.put_object(Bucket=locked, Key="free", Body=b"x")
    assert refused(s3.delete_object, Bucket=locked, Key="k0", VersionId=versions[0]) == (
        403,
        "AccessDenied",
    )
    marker = s3.delete_object(Bucket=locked, Key="k0")
    assert marker["DeleteMarker"] is True
    free = s3.list_object_versions(Bucket=locked, Prefix="free")["Versions"][0]["VersionId"]
    objects = [{"Key": f"k{n}", "VersionId": v} for n, v in enumerate(versions)]
    result = s3.delete_objects(
        Bucket=locked,
        Delete={"Objects": [*objects, {"Key": "free", "VersionId": free}]},
        BypassGovernanceRetention=True,
    )
    assert [d["Key"] for d in result["Deleted"]] == ["free"]
    assert sorted((e["Key"], e["Code"]) for e in result["Errors"]) == [
        ("k0", "AccessDenied"),
        ("k1", "AccessDenied"),
    ]
    listing = s3.list_object_versions(Bucket=locked)
    assert {v["VersionId"] for v in listing["Versions"]} == set(versions)
    assert set(listing["Versions"][0]) >= {"Key", "VersionId", "IsLatest", "ETag", "Size"}
    attributes = s3.get_object_attributes(
        Bucket=locked, Key="k1", VersionId=versions[1], ObjectAttributes=["ETag", "ObjectSize"]
    )
    assert attributes["ObjectSize"] == len(b"backup k1")


# ---- the Veeam-style flow ------------------------------------------------------------------------


def test_veeam_style_backup_flow_with_awscli(tmp_path: Path) -> None:
    """A backup tool's life: lock-enabled bucket, each object COMPLIANCE-retained, versions
    listed, retention extended before it runs out, deletes refused until expiry, then allowed.
    Time passes by restarting the node with LAKENODE_CLOCK_OFFSET_MS (signatures still use
    the real clock), so no step races a retain-until date."""
    node = SiteProcess(tmp_path / "data")
    node.start()
    try:
        aws = make_aws(node, tmp_path / "aws-home")
        name = "veeam-style-flow"
        aws("s3api", "create-bucket", "--bucket", name, "--object-lock-enabled-for-bucket")
        config = api_json(aws, "get-object-lock-configuration", "--bucket", name)
        assert config["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
        blocks = tmp_path / "block.vbk"
        blocks.write_bytes(b"backup block" * 1000)
        versions = {}
        for n in range(3):
            written = api_json(
                aws, "put-object", "--bucket", name, "--key", f"Veeam/Backup/blk{n}",
                "--body", str(blocks), "--object-lock-mode", "COMPLIANCE",
                "--object-lock-retain-until-date", iso(ahead(HOUR_S)),
                "--checksum-algorithm", "CRC32",
            )  # fmt: skip
            versions[f"Veeam/Backup/blk{n}"] = written["VersionId"]
        listed = api_json(aws, "list-object-versions", "--bucket", name)
        assert {v["Key"]: v["VersionId"] for v in listed["Versions"]} == versions
        key, version = "Veeam/Backup/blk0", versions["Veeam/Backup/blk0"]
        retention = f"Mode=COMPLIANCE,RetainUntilDate={iso(ahead(3 * HOUR_S))}"
        aws("s3api", "put-object-retention", "--bucket", name, "--key", key,
            "--version-id", version, "--retention", retention)  # fmt: skip
        shown = api_json(aws, "get-object-retention", "--bucket", name, "--key", key)
        assert shown["Retention"]["Mode"] == "COMPLIANCE"

        def delete(each_key: str) -> bool:
            done = aws("s3api", "delete-object", "--bucket", name, "--key", each_key,
                       "--version-id", versions[each_key], check=False)  # fmt: skip
            assert done.returncode == 0 or "AccessDenied" in done.stderr, done.stderr
            return done.returncode == 0

        assert not any(delete(each_key) for each_key in versions)
        restart_at(node, 2 * HOUR_S)  # the first retention has passed, the extended one not
        assert [delete(each_key) for each_key in versions] == [False, True, True]
        restart_at(node, 4 * HOUR_S)
        assert delete(key)
        assert not api_json(aws, "list-object-versions", "--bucket", name).get("Versions")
    finally:
        node.stop()


HOUR_S = 3600


def restart_at(node: SiteProcess, offset_s: int) -> None:
    node.stop()
    node.env["LAKENODE_CLOCK_OFFSET_MS"] = str(offset_s * 1000)
    node.start()
