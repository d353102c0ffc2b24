"""The POST policy evaluator (api/post_policy.py) and the form signatures (api/post_auth.py),
including AWS's published SigV4 browser-upload example."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from api.errors import S3Error
from api.post_auth import form_signer
from api.post_policy import PostPolicy, check_length, check_policy, parse_policy

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
FUTURE = "2999-01-01T00:00:00.000Z"


def encode(document: Any) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    return base64.b64encode(text.encode()).decode()


def policy(*conditions: Any, expiration: str = FUTURE) -> PostPolicy:
    return parse_policy(encode({"expiration": expiration, "conditions": list(conditions)}))


def refusal(policy_: PostPolicy, fields: dict[str, str], now: datetime = NOW) -> str:
    """The AccessDenied message for ``fields``, or "" when the policy admits them."""
    try:
        check_policy(policy_, fields, now)
    except S3Error as error:
        assert (error.code, error.status) == ("AccessDenied", 403)
        return error.message
    return ""


FIELDS = {"bucket": "b", "key": "user/eric/photo.jpg", "content-type": "image/jpeg"}


# ---- conditions -------------------------------------------------------------------------------


def test_every_condition_type_admits_a_matching_form() -> None:
    admitting = policy(
        {"bucket": "b"},
        ["eq", "$key", "user/eric/photo.jpg"],
        ["starts-with", "$Content-Type", "image/"],
        ["content-length-range", 1, 10],
    )
    assert refusal(admitting, FIELDS) == ""
    assert (admitting.length_min, admitting.length_max) == (1, 10)


@pytest.mark.parametrize(
    ("condition", "quoted"),
    [
        ({"bucket": "other"}, '["eq", "$bucket", "other"]'),
        (["eq", "$key", "user/eric/x"], '["eq", "$key", "user/eric/x"]'),
        ({"Key": "USER/eric/photo.jpg"}, '["eq", "$Key", "USER/eric/photo.jpg"]'),  # values: exact
        (["starts-with", "$key", "user/bob/"], '["starts-with", "$key", "user/bob/"]'),
        (["eq", "key", "user/eric/photo.jpg"], '["eq", "key", "user/eric/photo.jpg"]'),  # no $
        ({"acl": "private"}, '["eq", "$acl", "private"]'),  # a field the form lacks
    ],
)
def test_a_failed_condition_is_quoted_as_aws_does(condition: Any, quoted: str) -> None:
    rest = [{"bucket": "b"}, ["starts-with", "$key", ""], ["starts-with", "$content-type", ""]]
    message = refusal(policy(condition, *rest), FIELDS)
    assert message == f"Invalid according to Policy: Policy Condition failed: {quoted}"


def test_names_and_operators_are_case_insensitive() -> None:
    mixed = policy(
        {"BuCkEt": "b"}, ["STARTS-WITH", "$KEY", "user/"], ["Eq", "$content-TYPE", "image/jpeg"]
    )
    assert refusal(mixed, FIELDS) == ""


def test_an_empty_prefix_admits_anything_even_a_missing_field() -> None:
    open_policy = policy({"bucket": "b"}, ["starts-with", "$key", ""], ["starts-with", "$acl", ""])
    assert refusal(open_policy, {"bucket": "b", "key": "anything"}) == ""


@pytest.mark.parametrize(
    ("content_type", "admitted"),
    [("image/png, image/gif", True), ("image/png,text/html", False), ("text/html", False)],
)
def test_content_type_prefix_applies_to_each_listed_type(content_type: str, admitted: bool) -> None:
    images = policy({"bucket": "b"}, ["starts-with", "$Content-Type", "image/"])
    assert (refusal(images, {"bucket": "b", "content-type": content_type}) == "") is admitted


def test_other_fields_with_commas_are_one_value() -> None:
    prefix = policy({"bucket": "b"}, ["starts-with", "$x-amz-meta-tags", "a"])
    assert refusal(prefix, {"bucket": "b", "x-amz-meta-tags": "a1,b2"}) == ""


# ---- coverage of the form's fields -------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({"x-amz-meta-added": "1"}, "x-amz-meta-added"),
        ({"success_action_redirect": "http://evil.example/"}, "success_action_redirect"),
        ({"x-amz-date": "20240506T000000Z"}, "x-amz-date"),
        ({"x-ignore-tracking": "1"}, ""),
        ({"policy": "p", "signature": "s", "awsaccesskeyid": "a", "x-amz-signature": "s"}, ""),
    ],
)
def test_every_field_needs_a_condition_except_the_exempt_ones(
    extra: dict[str, str], refused: str
) -> None:
    covering = policy(
        {"bucket": "b"}, ["starts-with", "$key", ""], ["starts-with", "$content-type", ""]
    )
    message = refusal(covering, {**FIELDS, **extra})
    assert message == (
        f"Invalid according to Policy: Extra input fields: {refused}" if refused else ""
    )


def test_the_bucket_needs_a_condition_too() -> None:
    assert refusal(policy(["starts-with", "$key", ""]), {"bucket": "b", "key": "k"}) == (
        "Invalid according to Policy: Extra input fields: bucket"
    )


# ---- expiration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiration", "expired"),
    [
        ("2024-05-06T07:08:10Z", False),
        ("2024-05-06T07:08:10.000Z", False),
        ("2024-05-06T07:08:09Z", True),
        ("2024-05-06T07:08:08.999Z", True),
    ],
)
def test_a_policy_is_valid_until_its_expiration(expiration: str, expired: bool) -> None:
    message = refusal(policy({"bucket": "b"}, expiration=expiration), {"bucket": "b"})
    assert message == ("Invalid according to Policy: Policy expired." if expired else "")


# ---- content-length-range ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "final", "code"),
    [
        (4, True, "EntityTooSmall"),
        (4, False, ""),  # still arriving: too small is only known at the end
        (5, True, ""),
        (10, True, ""),
        (11, False, "EntityTooLarge"),  # known as soon as the 11th byte arrives
    ],
)
def test_length_range(size: int, final: bool, code: str) -> None:
    ranged = policy(["content-length-range", "5", 10])  # text sizes are accepted
    if not code:
        check_length(ranged, size, final)
        return
    with pytest.raises(S3Error) as excinfo:
        check_length(ranged, size, final)
    assert (excinfo.value.code, excinfo.value.status) == (code, 400)


def test_several_ranges_all_apply() -> None:
    ranged = policy(["content-length-range", 1, 100], ["content-length-range", 10, 1000])
    assert (ranged.length_min, ranged.length_max) == (10, 100)


def test_no_range_admits_any_size() -> None:
    check_length(policy({"bucket": "b"}), 0, True)
    check_length(policy({"bucket": "b"}), 1 << 40, True)


# ---- malformed documents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "detail"),
    [
        ("{policy}", "Invalid JSON."),
        (encode("expiration"), "Invalid JSON."),
        (encode([]), "Invalid JSON."),
        (base64.b64encode(b"\xff\xfe").decode(), "Invalid JSON."),
        (encode({"conditions": []}), "Policy missing expiration."),
        (encode({"expiration": FUTURE}), "Policy missing conditions."),
        (encode({"EXPIRATION": FUTURE, "conditions": []}), "Policy missing expiration."),
        (encode({"expiration": FUTURE, "conditions": {}}), "Invalid 'conditions' value"),
        (encode({"expiration": 32503680000, "conditions": []}), "Invalid 'expiration' value"),
        (
            encode({"expiration": "2999-01-01 00:00:00", "conditions": []}),
            "Invalid 'expiration' value: '2999-01-01 00:00:00'",
        ),
        (encode({"expiration": "2999-01-01T00:00:00+00:00", "conditions": []}), "'expiration'"),
        (encode({"expiration": "2999-02-30T00:00:00Z", "conditions": []}), "'expiration'"),
        (encode({"expiration": "tomorrow", "conditions": []}), "'expiration'"),
    ],
)
def test_unreadable_documents(encoded: str, detail: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse_policy(encoded)
    assert (excinfo.value.code, excinfo.value.status) == ("InvalidPolicyDocument", 400)
    assert excinfo.value.message.startswith("Invalid Policy: ")
    assert detail in excinfo.value.message


@pytest.mark.parametrize(
    "condition",
    [
        {},
        {"acl": "private", "key": "k"},
        {"acl": 1},
        "bucket",
        [],
        [1, "$key", "k"],
        ["eq", "$key"],
        ["eq", "$key", 1],
        ["ends-with", "$key", "x"],
        ["content-length-range", 0],
        ["content-length-range", -1, 0],
        ["content-length-range", 0, "x"],
        ["content-length-range", 0, 1.5],
        ["content-length-range", True, 10],
    ],
)
def test_invalid_conditions(condition: Any) -> None:
    with pytest.raises(S3Error) as excinfo:
        policy(condition)
    assert excinfo.value.code == "InvalidPolicyDocument"


def test_a_policy_wrapped_over_lines_is_read() -> None:
    encoded = encode({"expiration": FUTURE, "conditions": [{"bucket": "b"}]})
    wrapped = "\n".join(encoded[i : i + 16] for i in range(0, len(encoded), 16))
    assert parse_policy(wrapped).conditions == parse_policy(encoded).conditions


# ---- form signatures ---------------------------------------------------------------------------

# AWS's published example, "Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)".
AWS_EXAMPLE_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7"
    "ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91"
    "c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3Qi"
    "OiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwi"
    "fSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRh"
    "LXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVT"
    "MjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNy"
    "ZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9"
    "LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAi"
    "MjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9"
)
AWS_EXAMPLE_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_EXAMPLE_FIELDS = {
    "key": "user/user1/photo.jpg",
    "acl": "public-read",
    "success_action_redirect": "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
    "content-type": "image/jpeg",
    "x-amz-meta-uuid": "14365123651274",
    "x-amz-server-side-encryption": "AES256",
    "x-amz-credential": f"{AWS_EXAMPLE_KEY}/20151229/us-east-1/s3/aws4_request",
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-date": "20151229T000000Z",
    "x-amz-meta-tag": "",
    "policy": AWS_EXAMPLE_POLICY,
    "x-amz-signature": "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e",
}


def secrets_of(known: dict[str, str]) -> Any:
    return known.get


def test_aws_published_sigv4_example_verifies_and_satisfies_its_policy() -> None:
    signer = form_signer(
        AWS_EXAMPLE_FIELDS, secrets_of({AWS_EXAMPLE_KEY: AWS_EXAMPLE_SECRET}), "us-east-1"
    )
    assert signer == AWS_EXAMPLE_KEY
    example = parse_policy(AWS_EXAMPLE_POLICY)
    fields = {**AWS_EXAMPLE_FIELDS, "bucket": "sigv4examplebucket"}
    assert refusal(example, fields, datetime(2015, 12, 29, 12, tzinfo=UTC)) == ""
    assert refusal(example, fields, datetime(2015, 12, 31, tzinfo=UTC)).endswith("Policy expired.")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"x-amz-signature": "0" * 64}, "SignatureDoesNotMatch"),
        ({"policy": AWS_EXAMPLE_POLICY[:-4] + "fQ=="}, "SignatureDoesNotMatch"),
        ({"x-amz-algorithm": "AWS4-HMAC-SHA1"}, "AuthorizationQueryParametersError"),
        ({"x-amz-date": "2015-12-29T00:00:00Z"}, "AuthorizationQueryParametersError"),
        ({"x-amz-date": "20151230T000000Z"}, "AuthorizationQueryParametersError"),
        (
            {"x-amz-credential": f"{AWS_EXAMPLE_KEY}/20151229/eu-west-1/s3/aws4_request"},
            "AuthorizationQueryParametersError",
        ),
        (
            {"x-amz-credential": f"{AWS_EXAMPLE_KEY}/20151229/us-east-1/ec2/aws4_request"},
            "AuthorizationQueryParametersError",
        ),
        (
            {"x-amz-credential": "AKIAOTHER/20151229/us-east-1/s3/aws4_request"},
            "InvalidAccessKeyId",
        ),
    ],
)
def test_sigv4_form_errors(changes: dict[str, str], code: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        form_signer(
            {**AWS_EXAMPLE_FIELDS, **changes},
            secrets_of({AWS_EXAMPLE_KEY: AWS_EXAMPLE_SECRET}),
            "us-east-1",
        )
    assert excinfo.value.code == code


def sigv2(policy_: str, secret: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), policy_.encode(), hashlib.sha1).digest()
    ).decode()


def test_sigv2_form() -> None:
    encoded = encode({"expiration": FUTURE, "conditions": [{"bucket": "b"}]})
    fields = {"awsaccesskeyid": "AK", "policy": encoded, "signature": sigv2(encoded, "SK")}
    assert form_signer(fields, secrets_of({"AK": "SK"}), "us-east-1") == "AK"
    with pytest.raises(S3Error) as excinfo:
        form_signer({**fields, "signature": sigv2(encoded, "other")}, secrets_of({"AK": "SK"}), "x")
    assert excinfo.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        ({}, "", ""),  # anonymous
        ({"policy": "p"}, "AccessDenied", "Access Denied"),
        ({"signature": "s", "policy": "p"}, "InvalidArgument", "named 'AWSAccessKeyId'"),
        ({"awsaccesskeyid": "AK", "policy": "p"}, "InvalidArgument", "named 'Signature'"),
        ({"awsaccesskeyid": "AK", "signature": "s"}, "InvalidArgument", "named 'policy'"),
        ({"x-amz-signature": "s", "policy": "p"}, "InvalidArgument", "named 'X-Amz-Algorithm'"),
        (
            {k: v for k, v in AWS_EXAMPLE_FIELDS.items() if k != "x-amz-signature"},
            "InvalidArgument",
            "Bucket POST must contain a field named 'X-Amz-Signature'.  If it is specified, "
            "please check the order of the fields.",
        ),
    ],
)
def test_incomplete_signature_fields(fields: dict[str, str], code: str, text: str) -> None:
    if not code:
        assert form_signer(fields, secrets_of({}), "us-east-1") is None
        return
    with pytest.raises(S3Error) as excinfo:
        form_signer(fields, secrets_of({}), "us-east-1")
    assert excinfo.value.code == code
    assert text in excinfo.value.message
