"""The console's bucket settings page over plain HTTP (node/console/bucket_settings.py): each
section changed through the page and read back with boto3, S3's errors shown next to the
form with what was typed kept, CSRF, and a read-only key refused by S3 itself."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from html import unescape
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.console.console_http import (
    PREFIX,
    assert_sent_to_sign_in,
    csrf_in,
    http_client,
    make_key,
    sign_in,
)
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

SETTINGS_FORM = re.compile(r'<form method="post" action="[^"]*/settings/')
POLICY_ERROR = re.compile(r'<p id="policy-error"[^>]*>(.*?)</p>', re.S)


def page_of(client: httpx.Client, bucket: str) -> str:
    answer = client.get(f"{PREFIX}buckets/{bucket}/settings")
    assert answer.status_code == 200, answer.text
    return answer.text


def change(
    client: httpx.Client, bucket: str, action: str, expect: int = 303, **fields: str
) -> httpx.Response:
    """POST one of the page's forms, with the page's CSRF token."""
    token = csrf_in(page_of(client, bucket))
    answer = client.post(f"{PREFIX}buckets/{bucket}/settings/{action}",
                         data={"csrf": token, **fields})  # fmt: skip
    assert answer.status_code == expect, answer.text
    if expect == 303:
        assert answer.headers["location"].startswith(f"{PREFIX}buckets/{bucket}/settings#")
    return answer


def textarea(html: str, name: str) -> str:
    found = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert found is not None, f"no {name} editor"
    return unescape(found.group(1))


def policy_error(html: str) -> str:
    """The policy editor's inline error."""
    found = POLICY_ERROR.search(html)
    assert found is not None, "no policy error shown"
    return found.group(1)


def s3_refusal(read: Callable[..., Any], bucket: str) -> str:
    """S3's error code for ``read(Bucket=bucket)``, which must fail."""
    with pytest.raises(ClientError) as refused:
        read(Bucket=bucket)
    return str(refused.value.response["Error"]["Code"])


def test_versioning_is_enabled_and_suspended_through_the_page(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    listed = root.get(PREFIX + "buckets").text
    assert f'href="{PREFIX}buckets/{bucket}/settings"' in listed
    assert '<strong class="versioning-status">Unversioned</strong>' in page_of(root, bucket)
    change(root, bucket, "versioning", status="Enabled")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert '<strong class="versioning-status">Enabled</strong>' in page_of(root, bucket)
    change(root, bucket, "versioning", status="Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    wrong = change(root, bucket, "versioning", 400, status="Sideways")
    assert "Enabled or Suspended" in wrong.text


def test_object_lock_needs_versioning_then_takes_a_default_retention(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    refused = change(root, bucket, "object-lock", 409, mode="GOVERNANCE", period="5", unit="Days")
    assert "InvalidBucketState" in refused.text
    change(root, bucket, "versioning", status="Enabled")
    change(root, bucket, "object-lock", mode="GOVERNANCE", period="5", unit="Days")
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 5}
    assert "GOVERNANCE, 5 days" in page_of(root, bucket)
    not_a_number = change(root, bucket, "object-lock", 400, mode="COMPLIANCE", period="ten",
                          unit="Years")  # fmt: skip
    assert "whole number" in not_a_number.text
    assert 'value="ten"' in not_a_number.text  # what was typed stays in the form
    change(root, bucket, "object-lock", mode="none", period="", unit="Days")
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert "Rule" not in lock


def test_a_lifecycle_rule_is_added_shown_and_deleted(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "old/"},
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]})  # fmt: skip
    change(root, bucket, "lifecycle", rule_id="expire-logs", prefix="logs/",
           expiration_days="30", noncurrent_days="60", abort_days="7")  # fmt: skip
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [rule["ID"] for rule in rules] == ["markers", "expire-logs"]  # appended, kept
    added = rules[1]
    assert added["Filter"] == {"Prefix": "logs/"}
    assert added["Status"] == "Enabled"
    assert added["Expiration"] == {"Days": 30}
    assert added["NoncurrentVersionExpiration"]["NoncurrentDays"] == 60
    assert added["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    html = page_of(root, bucket)
    assert '<td class="name">expire-logs</td>' in html
    assert "prefix logs/" in html and "30 days" in html and "removed when expired" in html
    assert "&lt;ID&gt;expire-logs&lt;/ID&gt;" in html  # the raw XML, read-only
    change(root, bucket, "lifecycle-delete", rule_id="markers")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [rule["ID"] for rule in rules] == ["expire-logs"]
    change(root, bucket, "lifecycle-delete", rule_id="expire-logs")
    gone = s3_refusal(s3.get_bucket_lifecycle_configuration, bucket)
    assert gone == "NoSuchLifecycleConfiguration"


def test_bad_lifecycle_input_is_shown_never_a_500(root: httpx.Client, bucket: str) -> None:
    words = change(root, bucket, "lifecycle", 400, rule_id="r", prefix="", expiration_days="abc")
    assert "Expiration days must be a whole number" in words.text
    assert 'value="abc"' in words.text
    huge = change(root, bucket, "lifecycle", 400, rule_id="r", expiration_days="9" * 400)
    assert "whole number" in huge.text
    zero = change(root, bucket, "lifecycle", 400, rule_id="r", expiration_days="0")
    assert "InvalidArgument" in zero.text  # S3's own check
    nothing = change(root, bucket, "lifecycle", 400, rule_id="r", prefix="a/")
    assert "At least one action" in nothing.text
    change(root, bucket, "lifecycle", rule_id="r", abort_days="3")
    again = change(root, bucket, "lifecycle", 400, rule_id="r", abort_days="4")
    assert "Rule ID must be unique" in again.text
    missing = change(root, bucket, "lifecycle-delete", 400, rule_id="no-such-rule")
    assert "no lifecycle rule" in missing.text


def test_a_malformed_policy_is_shown_inline_and_the_text_is_kept(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    typed = '{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow",}\n  ]\n}'
    answer = change(root, bucket, "policy", 400, policy=typed)
    inline = policy_error(answer.text)
    assert "not valid JSON" in inline and "line 4, column" in inline
    assert textarea(answer.text, "policy") == typed
    meaningless = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps"}]})
    refused = change(root, bucket, "policy", 400, policy=meaningless)
    assert "MalformedPolicy" in policy_error(refused.text)
    assert textarea(refused.text, "policy") == meaningless
    assert s3_refusal(s3.get_bucket_policy, bucket) == "NoSuchBucketPolicy"


def test_a_valid_policy_is_stored_shown_pretty_and_deleted(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
    }]}  # fmt: skip
    change(root, bucket, "policy", policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    shown = textarea(page_of(root, bucket), "policy")
    assert shown == json.dumps(policy, indent=2)
    change(root, bucket, "policy-delete")
    assert s3_refusal(s3.get_bucket_policy, bucket) == "NoSuchBucketPolicy"


def test_cors_rules_round_trip_as_json(root: httpx.Client, s3: Any, bucket: str) -> None:
    rules = [
        {"ID": "web", "AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
    ]  # fmt: skip
    change(root, bucket, "cors", cors=json.dumps({"CORSRules": rules}))  # awscli's shape
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules
    html = page_of(root, bucket)
    assert json.loads(textarea(html, "cors")) == rules
    assert "https://app.example" in html
    change(root, bucket, "cors", cors=json.dumps(rules[1:]))  # a bare list works as well
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules[1:]
    for wrong, expected in (
        ("[{", "not valid JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("[]", "non-empty JSON list"),
        ('[{"AllowedOrigin": ["*"], "AllowedMethods": ["GET"]}]', "unknown field"),
        ('[{"AllowedOrigins": "*", "AllowedMethods": ["GET"]}]', "list of strings"),
        ('[{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "MaxAgeSeconds": "1"}]',
         "MaxAgeSeconds"),
        ('[{"AllowedOrigins": ["*"], "AllowedMethods": ["FETCH"]}]', "InvalidRequest"),
    ):  # fmt: skip
        refused = change(root, bucket, "cors", 400, cors=wrong)
        assert expected in unescape(refused.text), wrong
        assert textarea(refused.text, "cors") == wrong
    change(root, bucket, "cors-delete")
    assert s3_refusal(s3.get_bucket_cors, bucket) == "NoSuchCORSConfiguration"


def test_tags_round_trip(root: httpx.Client, s3: Any, bucket: str) -> None:
    change(root, bucket, "tags-add", tag_key="team", tag_value="storage")
    change(root, bucket, "tags-add", tag_key="<script>", tag_value="a&b")
    change(root, bucket, "tags-add", tag_key="team", tag_value="ops")  # a new value
    tags = {tag["Key"]: tag["Value"] for tag in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags == {"team": "ops", "<script>": "a&b"}
    html = page_of(root, bucket)
    assert '<td class="name">&lt;script&gt;</td>' in html and "<script>" not in html
    refused = change(root, bucket, "tags-add", 400, tag_key="aws:owner", tag_value="x")
    assert "InvalidTag" in refused.text
    change(root, bucket, "tags-remove", tag_key="team")
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "<script>", "Value": "a&b"}]
    change(root, bucket, "tags-remove", tag_key="<script>")
    assert s3_refusal(s3.get_bucket_tagging, bucket) == "NoSuchTagSet"


def test_a_change_without_the_csrf_token_is_refused(
    root: httpx.Client, s3: Any, bucket: str
) -> None:
    url = f"{PREFIX}buckets/{bucket}/settings/versioning"
    for token in (None, "0" * 64):
        data = {"status": "Enabled"} | ({"csrf": token} if token else {})
        assert root.post(url, data=data).status_code == 403
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    token = csrf_in(page_of(root, bucket))
    foreign = root.post(url, headers={"origin": "https://evil.example"},
                        data={"status": "Enabled", "csrf": token})  # fmt: skip
    assert foreign.status_code == 403
    too_big = root.post(f"{PREFIX}buckets/{bucket}/settings/policy",
                        data={"csrf": token, "policy": "x" * (200 << 10)})  # fmt: skip
    assert too_big.status_code == 413
    unknown = root.post(f"{PREFIX}buckets/{bucket}/settings/teleport", data={})
    assert unknown.status_code == 404
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_a_read_only_key_sees_settings_but_its_changes_are_refused_by_s3(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    access, secret = make_key(node, "--read-only")
    with sign_in(node, access, secret) as client:
        html = page_of(client, bucket)
        assert '<strong class="versioning-status">Unversioned</strong>' in html
        assert '<td class="name">k</td>' in html
        assert SETTINGS_FORM.search(html) is None  # no change forms
        assert "<textarea" not in html
        for action, fields in (
            ("versioning", {"status": "Enabled"}),
            ("tags-add", {"tag_key": "forged", "tag_value": "1"}),
            ("policy", {"policy": '{"Version": "2012-10-17", "Statement": []}'}),
        ):
            refused = change(client, bucket, action, 403, **fields)
            assert "AccessDenied" in refused.text
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "k", "Value": "v"}]


def test_a_missing_bucket_shows_s3_s_error(root: httpx.Client) -> None:
    answer = root.get(f"{PREFIX}buckets/no-such-bucket-{secrets.token_hex(3)}/settings")
    assert answer.status_code == 404
    assert "NoSuchBucket" in answer.text


def test_without_a_session_the_page_leads_to_sign_in_even_after_others_signed_in(
    node: NodeProcess, bucket: str
) -> None:
    # Sign-ins answered through any worker (a non-primary one forwards console requests to
    # the primary: node/internal.py) must leave nothing behind that a stranger's request
    # would carry: the forwarding client once kept the Set-Cookie of the last sign-in.
    for _ in range(12):
        with sign_in(node, ACCESS_KEY, SECRET_KEY):
            pass
    for method, action in [("GET", ""), ("POST", "/versioning")] * 10:
        # A new connection each time: it may reach any worker.
        with http_client(node) as stranger:
            answer = stranger.request(method, f"{PREFIX}buckets/{bucket}/settings{action}")
        assert answer.status_code == 303, (method, answer.status_code)
        assert_sent_to_sign_in(answer)
