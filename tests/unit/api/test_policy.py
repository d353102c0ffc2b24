"""The policy language subset: parse errors, evaluation per feature, and Deny's precedence."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import S3Error
from api.policy import Decision, Policy, PolicyRequest, evaluate, parse_policy

BUCKET = "photos"
ARN = f"arn:aws:s3:::{BUCKET}"


def statement(
    effect: str = "Allow",
    principal: Any = "*",
    action: Any = "s3:GetObject",
    resource: Any = f"{ARN}/*",
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    raw: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": resource}
    if principal is not None:
        raw["Principal"] = principal
    if condition is not None:
        raw["Condition"] = condition
    return raw


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def bucket_policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy(document(*statements), BUCKET)


def request(
    action: str = "s3:GetObject",
    resource: str = f"{ARN}/key",
    principal: str | None = "alice",
    **context: str,
) -> PolicyRequest:
    return PolicyRequest(principal, action, resource, context)


# ---- parsing -------------------------------------------------------------------------------

MALFORMED_BUCKET_POLICIES = {
    "not JSON": '{"Statement": [',
    "not an object": json.dumps([statement()]),
    "no Statement": json.dumps({"Version": "2012-10-17"}),
    "empty Statement": json.dumps({"Version": "2012-10-17", "Statement": []}),
    "Statement not an object": json.dumps({"Statement": ["Allow"]}),
    "bad Effect": document(statement(effect="Permit")),
    "missing Effect": document({k: v for k, v in statement().items() if k != "Effect"}),
    "non-s3 Action": document(statement(action="iam:PassRole")),
    "non-s3 Action in a list": document(statement(action=["s3:GetObject", "ec2:*"])),
    "missing Action": document({k: v for k, v in statement().items() if k != "Action"}),
    "empty Action list": document(statement(action=[])),
    "missing Resource": document({k: v for k, v in statement().items() if k != "Resource"}),
    "Resource of another bucket": document(statement(resource="arn:aws:s3:::other/*")),
    "Resource not an ARN": document(statement(resource=f"{BUCKET}/*")),
    "Resource with an empty ARN": document(statement(resource="arn:aws:s3:::")),
    "unknown condition operator": document(
        statement(condition={"StringSortOf": {"s3:prefix": "a"}})
    ),
    "unknown set qualifier": document(
        statement(condition={"ForSomeValues:StringEquals": {"s3:prefix": "a"}})
    ),
    "Null with IfExists": document(statement(condition={"NullIfExists": {"s3:prefix": "true"}})),
    "Null with a qualifier": document(
        statement(condition={"ForAnyValue:Null": {"s3:prefix": "true"}})
    ),
    "Null value not a boolean": document(statement(condition={"Null": {"s3:prefix": "maybe"}})),
    "bad number in NumericLessThan": document(
        statement(condition={"NumericLessThan": {"s3:max-keys": "ten"}})
    ),
    "bad base64 in BinaryEquals": document(
        statement(condition={"BinaryEquals": {"s3:prefix": "not base64!"}})
    ),
    "empty condition block": document(statement(condition={"StringEquals": {}})),
    "bad IP in IpAddress": document(
        statement(condition={"IpAddress": {"aws:SourceIp": "not-an-ip"}})
    ),
    "bad date in DateLessThan": document(
        statement(condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})
    ),
    "missing Principal": document(statement(principal=None)),
    "Service principal": document(statement(principal={"Service": "s3.amazonaws.com"})),
    "empty principal list": document(statement(principal={"AWS": []})),
    "Action and NotAction": document({**statement(), "NotAction": "s3:DeleteObject"}),
    "Principal and NotPrincipal": document({**statement(), "NotPrincipal": {"AWS": "bob"}}),
    "Resource and NotResource": document({**statement(), "NotResource": f"{ARN}/private/*"}),
    "unknown statement element": document({**statement(), "NotCondition": {}}),
}


@pytest.mark.parametrize(
    "text", MALFORMED_BUCKET_POLICIES.values(), ids=list(MALFORMED_BUCKET_POLICIES)
)
def test_malformed_bucket_policy(text: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse_policy(text, BUCKET)
    assert excinfo.value.code == "MalformedPolicy"
    assert excinfo.value.status == 400


def test_identity_policy_must_not_name_a_principal() -> None:
    # An identity policy applies to the key it is attached to; AWS refuses a Principal there.
    with pytest.raises(S3Error) as excinfo:
        parse_policy(document(statement(principal="*")))
    assert excinfo.value.code == "MalformedPolicy"


def test_identity_policy_may_name_any_bucket() -> None:
    policy = parse_policy(document(statement(principal=None, resource="arn:aws:s3:::any/*")))
    assert evaluate(policy, request(resource="arn:aws:s3:::any/k")) is Decision.ALLOW
    assert evaluate(policy, request(resource=f"{ARN}/k")) is None


def test_statement_may_be_a_single_object_and_values_single_strings() -> None:
    text = json.dumps({"Statement": statement()})
    policy = parse_policy(text, BUCKET)
    assert len(policy.statements) == 1
    assert evaluate(policy, request()) is Decision.ALLOW


def test_wildcard_bucket_in_resource_is_accepted_when_it_covers_the_bucket() -> None:
    policy = bucket_policy(statement(resource="arn:aws:s3:::pho*/*"))
    assert evaluate(policy, request()) is Decision.ALLOW
    with pytest.raises(S3Error):
        parse_policy(document(statement(resource="arn:aws:s3:::vid*/*")), BUCKET)


# ---- actions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:GetObject", "s3:GetObject", True),
        ("s3:GetObject", "s3:GetObjectTagging", False),
        ("s3:GetObject", "s3:PutObject", False),
        ("S3:GETOBJECT", "s3:GetObject", True),
        ("s3:getobject", "S3:GetObject", True),
        ("s3:Get*", "s3:GetObject", True),
        ("s3:get*", "s3:GetBucketPolicy", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:*Object", "s3:DeleteObject", True),
        ("s3:*Object", "s3:DeleteObjectTagging", False),
        ("s3:?etObject", "s3:GetObject", True),
        ("s3:?etObject", "s3:PutObject", False),
        ("s3:*", "s3:ListBucket", True),
        ("*", "s3:PutBucketPolicy", True),
    ],
)
def test_action_wildcards_are_case_insensitive(pattern: str, action: str, matches: bool) -> None:
    policy = bucket_policy(statement(action=pattern, resource=[ARN, f"{ARN}/*"]))
    assert evaluate(policy, request(action=action)) is (Decision.ALLOW if matches else None)


def test_any_of_several_actions_matches() -> None:
    policy = bucket_policy(statement(action=["s3:PutObject", "s3:GetObject"]))
    assert evaluate(policy, request(action="s3:GetObject")) is Decision.ALLOW
    assert evaluate(policy, request(action="s3:PutObject")) is Decision.ALLOW
    assert evaluate(policy, request(action="s3:DeleteObject")) is None


# ---- resources -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        (f"{ARN}/public/*", f"{ARN}/public/a.jpg", True),
        (f"{ARN}/public/*", f"{ARN}/public/deep/er/a.jpg", True),  # * crosses slashes
        (f"{ARN}/public/*", f"{ARN}/public/", True),
        (f"{ARN}/public/*", f"{ARN}/public", False),
        (f"{ARN}/public/*", f"{ARN}/private/a.jpg", False),
        (f"{ARN}/public/*", f"{ARN}/Public/a.jpg", False),  # keys are case-sensitive
        (f"{ARN}/public/*", ARN, False),
        (f"{ARN}/img?.png", f"{ARN}/img1.png", True),
        (f"{ARN}/img?.png", f"{ARN}/img10.png", False),
        (f"{ARN}/img?.png", f"{ARN}/img.png", False),
        (f"{ARN}/[ab]", f"{ARN}/[ab]", True),  # no character classes: [ is literal
        (f"{ARN}/[ab]", f"{ARN}/a", False),
        (f"{ARN}/exact.txt", f"{ARN}/exact.txt", True),
        (f"{ARN}/exact.txt", f"{ARN}/exact.txt.bak", False),
        (ARN, ARN, True),
        (ARN, f"{ARN}/key", False),
        (f"{ARN}*", f"{ARN}/key", True),
        ("*", f"{ARN}/anything", True),
        ("*", ARN, True),
    ],
)
def test_resource_wildcards(pattern: str, resource: str, matches: bool) -> None:
    policy = bucket_policy(statement(action="s3:*", resource=pattern))
    assert evaluate(policy, request(resource=resource)) is (Decision.ALLOW if matches else None)


# ---- principals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "who", "matches"),
    [
        ("*", "alice", True),
        ("*", None, True),  # "*" includes anonymous requests
        ({"AWS": "*"}, "bob", True),
        ({"AWS": "*"}, None, True),
        ({"AWS": "alice"}, "alice", True),
        ({"AWS": "alice"}, "bob", False),
        ({"AWS": "alice"}, None, False),
        ({"AWS": "alice"}, "ALICE", False),  # key ids are case-sensitive
        ({"AWS": ["bob", "alice"]}, "alice", True),
        ({"AWS": ["bob", "alice"]}, "carol", False),
        ({"AWS": "arn:aws:iam::123456789012:user/alice"}, "alice", True),
        ({"AWS": "arn:aws:iam::123456789012:user/alice"}, "bob", False),
        ({"AWS": ["arn:aws:iam::000000000000:user/bob", "carol"]}, "bob", True),
    ],
)
def test_principal(principal: Any, who: str | None, matches: bool) -> None:
    policy = bucket_policy(statement(principal=principal))
    assert evaluate(policy, request(principal=who)) is (Decision.ALLOW if matches else None)


# ---- conditions ----------------------------------------------------------------------------

ABSENT = None
T2030 = "2030-01-01T00:00:00Z"
CONDITION_CASES = [
    # operator, key, policy value, request value (None: key absent), holds
    ("StringEquals", "s3:prefix", "docs/", "docs/", True),
    ("StringEquals", "s3:prefix", "docs/", "docs/x", False),
    ("StringEquals", "s3:prefix", "docs/", "DOCS/", False),
    ("StringEquals", "s3:prefix", "docs/", ABSENT, False),
    ("StringNotEquals", "s3:prefix", "docs/", "docs/", False),
    ("StringNotEquals", "s3:prefix", "docs/", "img/", True),
    ("StringNotEquals", "s3:prefix", "docs/", ABSENT, True),
    ("StringLike", "s3:prefix", "docs/*", "docs/2024/", True),
    ("StringLike", "s3:prefix", "docs/*", "img/", False),
    ("StringLike", "s3:prefix", "docs/?", "docs/a", True),
    ("StringLike", "s3:prefix", "docs/?", "docs/ab", False),
    ("StringLike", "s3:prefix", "docs/*", ABSENT, False),
    ("StringNotLike", "s3:prefix", "docs/*", "docs/a", False),
    ("StringNotLike", "s3:prefix", "docs/*", "img/a", True),
    ("StringNotLike", "s3:prefix", "docs/*", ABSENT, True),
    ("IpAddress", "aws:SourceIp", "127.0.0.0/8", "127.0.0.1", True),
    ("IpAddress", "aws:SourceIp", "127.0.0.0/8", "10.0.0.1", False),
    ("IpAddress", "aws:SourceIp", "10.1.2.3", "10.1.2.3", True),  # a bare address is a /32
    ("IpAddress", "aws:SourceIp", "10.1.2.3", "10.1.2.4", False),
    ("IpAddress", "aws:SourceIp", "127.0.0.0/8", "::1", False),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", "2001:db8::7", True),
    ("IpAddress", "aws:SourceIp", "127.0.0.0/8", ABSENT, False),
    ("NotIpAddress", "aws:SourceIp", "127.0.0.1/32", "127.0.0.1", False),
    ("NotIpAddress", "aws:SourceIp", "127.0.0.1/32", "127.0.0.2", True),
    ("NotIpAddress", "aws:SourceIp", "127.0.0.1/32", ABSENT, True),
    ("Bool", "aws:SecureTransport", "false", "false", True),
    ("Bool", "aws:SecureTransport", False, "false", True),  # a JSON boolean
    ("Bool", "aws:SecureTransport", True, "false", False),
    ("Bool", "aws:SecureTransport", "true", "true", True),
    ("Bool", "aws:SecureTransport", "TRUE", "true", True),
    ("Bool", "aws:SecureTransport", "true", ABSENT, False),
    ("DateLessThan", "aws:CurrentTime", T2030, "2025-06-01T12:00:00Z", True),
    ("DateLessThan", "aws:CurrentTime", T2030, "2031-01-01T00:00:00Z", False),
    ("DateLessThan", "aws:CurrentTime", T2030, T2030, False),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01", "2029-12-31T23:59:59Z", True),
    ("DateLessThan", "aws:CurrentTime", T2030, ABSENT, False),
    ("DateLessThanEquals", "aws:CurrentTime", T2030, T2030, True),
    ("DateGreaterThan", "aws:CurrentTime", T2030, "2031-01-01T00:00:00Z", True),
    ("DateGreaterThan", "aws:CurrentTime", T2030, "2025-01-01T00:00:00Z", False),
    ("DateGreaterThan", "aws:CurrentTime", T2030, T2030, False),
    ("DateGreaterThan", "aws:CurrentTime", T2030, ABSENT, False),
    ("DateGreaterThanEquals", "aws:CurrentTime", T2030, T2030, True),
]  # fmt: skip


@pytest.mark.parametrize(("operator", "key", "value", "actual", "holds"), CONDITION_CASES)
def test_condition_operator(
    operator: str, key: str, value: Any, actual: str | None, holds: bool
) -> None:
    policy = bucket_policy(statement(condition={operator: {key: value}}))
    context = {} if actual is None else {key: actual}
    assert evaluate(policy, request(**context)) is (Decision.ALLOW if holds else None)


def test_condition_keys_are_case_insensitive() -> None:
    policy = bucket_policy(statement(condition={"IpAddress": {"AWS:SOURCEIP": "127.0.0.0/8"}}))
    assert evaluate(policy, request(**{"aws:SourceIp": "127.0.0.1"})) is Decision.ALLOW
    policy = bucket_policy(statement(condition={"StringLike": {"s3:prefix": "a*"}}))
    assert evaluate(policy, request(**{"S3:Prefix": "abc"})) is Decision.ALLOW


def test_values_of_one_key_are_alternatives() -> None:
    policy = bucket_policy(statement(condition={"StringLike": {"s3:prefix": ["docs/*", "img/*"]}}))
    for prefix, allowed in (("docs/a", True), ("img/b", True), ("tmp/c", False)):
        expected = Decision.ALLOW if allowed else None
        assert evaluate(policy, request(**{"s3:prefix": prefix})) is expected, prefix


def test_negated_operator_with_several_values_needs_all_to_differ() -> None:
    condition = {"StringNotLike": {"s3:prefix": ["docs/*", "img/*"]}}
    policy = bucket_policy(statement(condition=condition))
    assert evaluate(policy, request(**{"s3:prefix": "docs/a"})) is None
    assert evaluate(policy, request(**{"s3:prefix": "img/a"})) is None
    assert evaluate(policy, request(**{"s3:prefix": "tmp/a"})) is Decision.ALLOW


def test_several_keys_and_operators_must_all_hold() -> None:
    condition = {
        "StringEquals": {"s3:prefix": "docs/", "s3:delimiter": "/"},
        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
    }
    policy = bucket_policy(statement(condition=condition))
    full = {"s3:prefix": "docs/", "s3:delimiter": "/", "aws:SourceIp": "10.9.9.9"}
    assert evaluate(policy, request(**full)) is Decision.ALLOW
    for key, wrong in (("s3:prefix", "img/"), ("s3:delimiter", "-"), ("aws:SourceIp", "1.2.3.4")):
        assert evaluate(policy, request(**{**full, key: wrong})) is None, key
        partial = {k: v for k, v in full.items() if k != key}
        assert evaluate(policy, request(**partial)) is None, key


MORE_CONDITION_CASES = [
    ("StringEqualsIgnoreCase", "s3:prefix", "Docs/", "dOCS/", True),
    ("StringEqualsIgnoreCase", "s3:prefix", "docs/", "img/", False),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "docs/", "DOCS/", False),
    ("StringNotEqualsIgnoreCase", "s3:prefix", "docs/", ABSENT, True),
    ("NumericEquals", "s3:max-keys", 10, "10", True),
    ("NumericEquals", "s3:max-keys", "10", "10.0", True),
    ("NumericEquals", "s3:max-keys", 10, "11", False),
    ("NumericEquals", "s3:max-keys", 10, "ten", False),  # not a number: matches nothing
    ("NumericNotEquals", "s3:max-keys", 10, "11", True),
    ("NumericNotEquals", "s3:max-keys", 10, "10", False),
    ("NumericLessThan", "s3:max-keys", 100, "99", True),
    ("NumericLessThan", "s3:max-keys", 100, "100", False),
    ("NumericLessThan", "s3:max-keys", 100, ABSENT, False),
    ("NumericLessThanEquals", "s3:max-keys", 100, "100", True),
    ("NumericGreaterThan", "s3:max-keys", 100, "101", True),
    ("NumericGreaterThan", "s3:max-keys", 100, "100", False),
    ("NumericGreaterThanEquals", "s3:max-keys", 100, "100", True),
    ("NumericGreaterThanEquals", "s3:max-keys", 100, "-1", False),
    ("DateEquals", "aws:CurrentTime", T2030, "2030-01-01T00:00:00+00:00", True),
    ("DateEquals", "aws:CurrentTime", "1893456000", T2030, True),  # epoch seconds
    ("DateNotEquals", "aws:CurrentTime", T2030, "2031-01-01T00:00:00Z", True),
    ("DateNotEquals", "aws:CurrentTime", T2030, ABSENT, True),
    ("BinaryEquals", "s3:prefix", "ZG9jcy8=", "ZG9jcy8=", True),
    ("BinaryEquals", "s3:prefix", "ZG9jcy8=", "aW1nLw==", False),
    ("ArnLike", "aws:SourceArn", "arn:aws:s3:::b*", "arn:aws:s3:::bucket", True),
    ("ArnLike", "aws:SourceArn", "arn:aws:s3:::b*", "arn:aws:s3:::other", False),
    ("ArnEquals", "aws:SourceArn", "arn:aws:s3:::bucket", "arn:aws:s3:::bucket", True),
    ("ArnNotEquals", "aws:SourceArn", "arn:aws:s3:::bucket", "arn:aws:s3:::other", True),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:s3:::b*", "arn:aws:s3:::bucket", False),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:s3:::b*", ABSENT, True),
    # ...IfExists: an absent key makes the condition true, a present one is tested as usual
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", ABSENT, True),
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", "private", True),
    ("StringEqualsIfExists", "s3:x-amz-acl", "private", "public-read", False),
    ("StringLikeIfExists", "s3:prefix", "docs/*", ABSENT, True),
    ("StringLikeIfExists", "s3:prefix", "docs/*", "img/", False),
    ("NumericLessThanEqualsIfExists", "s3:max-keys", 10, ABSENT, True),
    ("NumericLessThanEqualsIfExists", "s3:max-keys", 10, "11", False),
    ("IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8", ABSENT, True),
    ("IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8", "127.0.0.1", False),
    ("BoolIfExists", "aws:SecureTransport", "true", ABSENT, True),
    ("BoolIfExists", "aws:SecureTransport", "true", "false", False),
    ("DateGreaterThanIfExists", "aws:CurrentTime", T2030, ABSENT, True),
    ("StringNotEqualsIfExists", "s3:x-amz-acl", "public-read", "public-read", False),
    # Null: "true" holds when the key is absent, "false" when it is present
    ("Null", "s3:x-amz-acl", "true", ABSENT, True),
    ("Null", "s3:x-amz-acl", "true", "private", False),
    ("Null", "s3:x-amz-acl", "false", "private", True),
    ("Null", "s3:x-amz-acl", False, ABSENT, False),
]  # fmt: skip


@pytest.mark.parametrize(("operator", "key", "value", "actual", "holds"), MORE_CONDITION_CASES)
def test_more_condition_operators(
    operator: str, key: str, value: Any, actual: str | None, holds: bool
) -> None:
    test_condition_operator(operator, key, value, actual, holds)


TAG_KEYS = "s3:RequestObjectTagKeys"
# (operator, policy values, request values or None for absent, holds)
SET_CASES = [
    ("ForAnyValue:StringEquals", ["team", "project"], ("team", "cost"), True),
    ("ForAnyValue:StringEquals", ["team", "project"], ("cost",), False),
    ("ForAnyValue:StringEquals", ["team"], None, False),  # an empty set has no value
    ("ForAnyValue:StringEquals", ["team"], (), False),
    ("ForAnyValue:StringLike", ["t*"], ("cost", "team"), True),
    ("ForAnyValue:StringNotEquals", ["team"], ("team", "cost"), True),  # cost differs
    ("ForAnyValue:StringNotEquals", ["team"], ("team",), False),
    ("ForAnyValue:StringEqualsIfExists", ["team"], None, True),
    ("ForAllValues:StringEquals", ["team", "project"], ("team", "project"), True),
    ("ForAllValues:StringEquals", ["team", "project"], ("team",), True),
    ("ForAllValues:StringEquals", ["team", "project"], ("team", "cost"), False),
    ("ForAllValues:StringEquals", ["team"], None, True),  # vacuously true on an empty set
    ("ForAllValues:StringEquals", ["team"], (), True),
    ("ForAllValues:StringLike", ["t*", "p*"], ("team", "project"), True),
    ("ForAllValues:StringNotEquals", ["secret"], ("team", "project"), True),
    ("ForAllValues:StringNotEquals", ["secret"], ("team", "secret"), False),
    # without a qualifier a multi-valued key matches when any of its values does
    ("StringEquals", ["team"], ("cost", "team"), True),
    ("StringEquals", ["team"], ("cost",), False),
    ("StringNotEquals", ["team"], ("cost", "team"), False),
    ("Null", ["false"], ("team",), True),
    ("Null", ["true"], (), True),
]


@pytest.mark.parametrize(("operator", "values", "actual", "holds"), SET_CASES)
def test_set_qualifiers_on_multi_valued_keys(
    operator: str, values: list[str], actual: tuple[str, ...] | None, holds: bool
) -> None:
    policy = bucket_policy(statement(condition={operator: {TAG_KEYS: values}}))
    context = {} if actual is None else {TAG_KEYS: actual}
    outcome = evaluate(policy, PolicyRequest("alice", "s3:GetObject", f"{ARN}/key", context))
    assert outcome is (Decision.ALLOW if holds else None)


def test_tag_key_in_a_condition_key_is_case_sensitive() -> None:
    condition = {"StringEquals": {"S3:ExistingObjectTag/Team": "blue"}}
    policy = bucket_policy(statement(condition=condition))
    assert evaluate(policy, request(**{"s3:existingobjecttag/Team": "blue"})) is Decision.ALLOW
    assert evaluate(policy, request(**{"s3:ExistingObjectTag/team": "blue"})) is None
    assert policy.uses_key_prefix("s3:existingobjecttag/")
    assert not policy.uses_key_prefix("s3:requestobjecttag")


# ---- policy variables ----------------------------------------------------------------------


def home_policy(version: str, **condition: Any) -> Policy:
    raw = statement(principal="*", action="s3:*", resource=f"{ARN}/home/${{aws:username}}/*")
    if condition:
        raw["Condition"] = condition
    return parse_policy(json.dumps({"Version": version, "Statement": [raw]}), BUCKET)


def test_variable_in_a_resource() -> None:
    policy = home_policy("2012-10-17")
    mine = request(resource=f"{ARN}/home/alice/notes", **{"aws:username": "alice"})
    theirs = request(resource=f"{ARN}/home/bob/notes", **{"aws:username": "alice"})
    assert evaluate(policy, mine) is Decision.ALLOW
    assert evaluate(policy, theirs) is None
    # Without a value the element matches nothing; a value's wildcards are literal.
    assert evaluate(policy, request(resource=f"{ARN}/home/alice/notes")) is None
    starred = request(resource=f"{ARN}/home/alice/notes", **{"aws:username": "*"})
    assert evaluate(policy, starred) is None


def test_variables_are_literal_text_in_version_2008() -> None:
    policy = home_policy("2008-10-17")
    literal = request(resource=f"{ARN}/home/${{aws:username}}/x", **{"aws:username": "alice"})
    assert evaluate(policy, literal) is Decision.ALLOW
    substituted = request(resource=f"{ARN}/home/alice/x", **{"aws:username": "alice"})
    assert evaluate(policy, substituted) is None


@pytest.mark.parametrize(
    ("operator", "value", "prefix", "holds"),
    [
        ("StringLike", "home/${aws:username}/*", "home/alice/docs", True),
        ("StringLike", "home/${aws:username}/*", "home/bob/docs", False),
        ("StringEquals", "home/${aws:username}/", "home/alice/", True),
        ("StringEquals", "home/${aws:username}/", "home/alice/x", False),
        ("StringEqualsIgnoreCase", "HOME/${aws:username}/", "home/ALICE/", True),
        ("StringNotLike", "home/${aws:username}/*", "home/bob/x", True),
        ("StringEquals", "star${*}", "star*", True),
        ("StringEquals", "star${*}", "stars", False),
        ("StringLike", "${aws:nothing, 'guest'}/*", "guest/x", True),
        ("StringLike", "${aws:nothing}/*", "guest/x", False),
    ],
)
def test_variables_in_condition_values(operator: str, value: str, prefix: str, holds: bool) -> None:
    policy = parse_policy(document(statement(condition={operator: {"s3:prefix": value}})), BUCKET)
    context = {"s3:prefix": prefix, "aws:username": "alice"}
    assert evaluate(policy, request(**context)) is (Decision.ALLOW if holds else None)


# ---- NotPrincipal, NotAction, NotResource ------------------------------------------------


def test_not_principal_applies_to_everyone_else() -> None:
    deny = {**statement(effect="Deny", principal=None), "NotPrincipal": {"AWS": ["alice"]}}
    policy = bucket_policy(statement(), deny)
    assert evaluate(policy, request(principal="alice")) is Decision.ALLOW
    assert evaluate(policy, request(principal="bob")) is Decision.DENY
    assert evaluate(policy, request(principal=None)) is Decision.DENY  # anonymous too


def test_not_principal_by_iam_arn_and_canonical_id() -> None:
    from api.settings import owner_id

    not_them = {"AWS": "arn:aws:iam::123456789012:user/alice", "CanonicalUser": owner_id("bob")}
    deny = {**statement(effect="Deny", principal=None), "NotPrincipal": not_them}
    policy = bucket_policy(statement(), deny)
    assert evaluate(policy, request(principal="alice")) is Decision.ALLOW
    assert evaluate(policy, request(principal="bob")) is Decision.ALLOW
    assert evaluate(policy, request(principal="carol")) is Decision.DENY


def test_not_action() -> None:
    raw = {**statement(action=None), "NotAction": ["s3:Delete*", "s3:PutBucketPolicy"]}
    del raw["Action"]
    policy = bucket_policy(raw)
    assert evaluate(policy, request("s3:GetObject")) is Decision.ALLOW
    assert evaluate(policy, request("s3:PutObject")) is Decision.ALLOW
    assert evaluate(policy, request("s3:DeleteObject")) is None
    assert evaluate(policy, request("s3:PutBucketPolicy", ARN)) is None


def test_not_resource() -> None:
    raw = {**statement(effect="Deny"), "NotResource": [f"{ARN}/public/*"]}
    del raw["Resource"]
    policy = bucket_policy(statement(resource=f"{ARN}/*"), raw)
    assert evaluate(policy, request(resource=f"{ARN}/public/a")) is Decision.ALLOW
    assert evaluate(policy, request(resource=f"{ARN}/private/a")) is Decision.DENY


def test_not_resource_may_name_other_buckets() -> None:
    raw = {**statement(effect="Deny"), "NotResource": "arn:aws:s3:::elsewhere/*"}
    del raw["Resource"]
    assert evaluate(bucket_policy(raw), request()) is Decision.DENY


# ---- combining statements ------------------------------------------------------------------


@pytest.mark.parametrize("deny_first", [True, False])
def test_explicit_deny_beats_allow(deny_first: bool) -> None:
    allow = statement(action="s3:*", resource=[ARN, f"{ARN}/*"])
    deny = statement(effect="Deny", action="s3:DeleteObject", resource=f"{ARN}/keep/*")
    policy = bucket_policy(*((deny, allow) if deny_first else (allow, deny)))
    assert evaluate(policy, request("s3:DeleteObject", f"{ARN}/keep/a")) is Decision.DENY
    assert evaluate(policy, request("s3:DeleteObject", f"{ARN}/tmp/a")) is Decision.ALLOW
    assert evaluate(policy, request("s3:GetObject", f"{ARN}/keep/a")) is Decision.ALLOW


def test_deny_whose_condition_fails_does_not_deny() -> None:
    allow = statement()
    deny = statement(effect="Deny", condition={"Bool": {"aws:SecureTransport": "false"}})
    policy = bucket_policy(allow, deny)
    assert evaluate(policy, request(**{"aws:SecureTransport": "true"})) is Decision.ALLOW
    assert evaluate(policy, request(**{"aws:SecureTransport": "false"})) is Decision.DENY


def test_deny_for_one_principal_leaves_others_allowed() -> None:
    policy = bucket_policy(statement(), statement(effect="Deny", principal={"AWS": "mallory"}))
    assert evaluate(policy, request(principal="mallory")) is Decision.DENY
    assert evaluate(policy, request(principal="alice")) is Decision.ALLOW
    assert evaluate(policy, request(principal=None)) is Decision.ALLOW


def test_nothing_matches_is_no_decision() -> None:
    policy = bucket_policy(
        statement(principal={"AWS": "bob"}),
        statement(effect="Deny", action="s3:PutObject"),
    )
    assert evaluate(policy, request(principal="alice")) is None
    assert evaluate(policy, request(action="s3:ListBucket", resource=ARN)) is None


# ---- property: a matching Deny always wins ---------------------------------------------------

ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketAcl"]
ACTION_PATTERNS = [*ACTIONS, "s3:Get*", "s3:*Object", "s3:*", "*", "S3:getobject"]
RESOURCES = [ARN, f"{ARN}/k", f"{ARN}/a/x", f"{ARN}/a1", f"{ARN}/b/[x]"]
RESOURCE_PATTERNS = [*RESOURCES, f"{ARN}/*", f"{ARN}/a/*", f"{ARN}/a?", f"{ARN}*", "*"]
PRINCIPALS = [
    "*",
    {"AWS": "*"},
    {"AWS": "alice"},
    {"AWS": ["bob", "alice"]},
    {"AWS": "arn:aws:iam::1:user/bob"},
]
CONDITIONS = [
    None,
    {"StringLike": {"s3:prefix": "a*"}},
    {"StringNotLike": {"s3:prefix": ["a*", "b*"]}},
    {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
    {"NotIpAddress": {"aws:SourceIp": "127.0.0.1"}},
    {"Bool": {"aws:SecureTransport": True}},
    {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
    {"StringEquals": {"s3:prefix": "a/"}, "DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}},
]
CONTEXTS = [
    {},
    {"s3:prefix": "a/", "aws:SourceIp": "127.0.0.1", "aws:SecureTransport": "false"},
    {"s3:prefix": "b", "aws:SourceIp": "10.0.0.1", "aws:SecureTransport": "true"},
    {"aws:CurrentTime": "2025-01-01T00:00:00Z", "aws:SourceIp": "127.0.0.9"},
]

statements = st.builds(
    statement,
    effect=st.sampled_from(["Allow", "Deny"]),
    principal=st.sampled_from(PRINCIPALS),
    action=st.lists(st.sampled_from(ACTION_PATTERNS), min_size=1, max_size=3),
    resource=st.lists(st.sampled_from(RESOURCE_PATTERNS), min_size=1, max_size=3),
    condition=st.sampled_from(CONDITIONS),
)
requests = st.builds(
    PolicyRequest,
    principal=st.sampled_from([None, "alice", "bob", "carol"]),
    action=st.sampled_from(ACTIONS),
    resource=st.sampled_from(RESOURCES),
    context=st.sampled_from(CONTEXTS),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(statements, min_size=1, max_size=5), requests, st.data())
def test_adding_a_matching_deny_never_allows(
    raw_statements: list[dict[str, Any]], req: PolicyRequest, data: st.DataObject
) -> None:
    before = evaluate(bucket_policy(*raw_statements), req)
    deny = statement(
        effect="Deny",
        principal="*",
        action=data.draw(st.sampled_from([req.action, "s3:*", "*", req.action.upper()])),
        resource=data.draw(st.sampled_from([req.resource, "*", f"{ARN}*"])),
    )
    position = data.draw(st.integers(0, len(raw_statements)))
    with_deny = [*raw_statements[:position], deny, *raw_statements[position:]]
    after = evaluate(bucket_policy(*with_deny), req)
    assert after is Decision.DENY
    assert before is not Decision.DENY or after is Decision.DENY


@settings(max_examples=300, deadline=None)
@given(st.lists(statements, min_size=0, max_size=4), statements, requests)
def test_adding_any_deny_statement_never_grants(
    raw_statements: list[dict[str, Any]], extra: dict[str, Any], req: PolicyRequest
) -> None:
    """Monotonicity: a Deny can only take permissions away."""
    deny = {**extra, "Effect": "Deny"}
    after = evaluate(bucket_policy(*raw_statements, deny), req)
    if after is Decision.ALLOW:
        assert evaluate(bucket_policy(*raw_statements), req) is Decision.ALLOW
    before = evaluate(bucket_policy(*raw_statements), req) if raw_statements else None
    if before is Decision.DENY:
        assert after is Decision.DENY
