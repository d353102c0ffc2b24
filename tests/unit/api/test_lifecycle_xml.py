"""The LifecycleConfiguration document (api/lifecycle_xml.py): every form AWS accepts parses and
renders back the same; every document AWS refuses gets AWS's error code."""

from __future__ import annotations

import pytest

from api.errors import S3Error
from api.lifecycle_xml import RULES_MAX, parse_lifecycle, render_lifecycle
from storage.lifecycle import DAY_MS, FilterForm


def doc(*rules: str) -> bytes:
    body = "".join(f"<Rule>{r}</Rule>" for r in rules)
    return (
        '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{body}</LifecycleConfiguration>"
    ).encode()


ON = "<Status>Enabled</Status>"
EXPIRE = "<Expiration><Days>1</Days></Expiration>"


@pytest.mark.parametrize(
    ("rule", "form"),
    [
        (f"<ID>a</ID><Filter/>{ON}{EXPIRE}", FilterForm.EMPTY),
        (f"<ID>a</ID><Filter><Prefix>logs/</Prefix></Filter>{ON}{EXPIRE}", FilterForm.PREFIX),
        (f"<ID>a</ID><Prefix>logs/</Prefix>{ON}{EXPIRE}", FilterForm.LEGACY_PREFIX),
        (
            f"<ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{ON}{EXPIRE}",
            FilterForm.TAG,
        ),
        (
            f"<ID>a</ID><Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></Filter>{ON}"
            f"{EXPIRE}",
            FilterForm.SIZE_GT,
        ),
        (
            "<ID>a</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
            "<Tag><Key>j</Key><Value>w</Value></Tag><ObjectSizeGreaterThan>1"
            "</ObjectSizeGreaterThan><ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter>"
            f"{ON}<Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>"
            "<NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>"
            "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>",
            FilterForm.AND,
        ),
        (
            "<ID>m</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Disabled</Status>"
            "<AbortIncompleteMultipartUpload><DaysAfterInitiation>2"
            "</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
            "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
            FilterForm.PREFIX,
        ),
    ],
)
def test_accepted_forms_round_trip(rule: str, form: FilterForm) -> None:
    parsed = parse_lifecycle(doc(rule))
    assert parsed.rules[0].filter.form == form
    assert parse_lifecycle(render_lifecycle(parsed)) == parsed


def test_values_are_read_as_written() -> None:
    (rule,) = parse_lifecycle(
        doc(
            "<Filter><Prefix>p</Prefix></Filter>" + ON + "<Expiration><Date>2030-01-01T00:00:00"
            ".000Z</Date></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>4"
            "</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
        )
    ).rules
    assert rule.expiration_date_ms is not None and rule.expiration_date_ms % DAY_MS == 0
    assert rule.abort_days == 4 and rule.enabled
    assert rule.rule_id  # generated, as AWS does, when the rule has none


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<LifecycleConfiguration/>", "MalformedXML"),
        (b"not xml", "MalformedXML"),
        (doc(f"<ID>a</ID>{EXPIRE}"), "MalformedXML"),  # no Status
        (doc(f"<ID>a</ID><Filter/><Status>On</Status>{EXPIRE}"), "MalformedXML"),
        (doc(f"<ID>a</ID>{ON}{EXPIRE}"), "MalformedXML"),  # no Filter nor Prefix
        (doc(f"<ID>a</ID><Prefix/><Filter/>{ON}{EXPIRE}"), "MalformedXML"),
        (
            doc(f"<ID>a</ID><Filter><Prefix>a</Prefix><Prefix>b</Prefix></Filter>{ON}{EXPIRE}"),
            "MalformedXML",
        ),
        (doc(f"<ID>a</ID><Filter/>{ON}<Expiration/>"), "MalformedXML"),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z"
                "</Date></Expiration>"
            ),
            "MalformedXML",
        ),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>"
                "true</ExpiredObjectDeleteMarker></Expiration>"
            ),
            "MalformedXML",
        ),
        (doc(f"<ID>a</ID><Filter/>{ON}<Expiration><Days>x</Days></Expiration>"), "MalformedXML"),
        (doc(f"<ID>a</ID><Filter/>{ON}<Bogus/>{EXPIRE}"), "MalformedXML"),
        (doc(f"<ID>a</ID><Filter/>{ON}<Expiration><Days>0</Days></Expiration>"), "InvalidArgument"),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>"
            ),
            "InvalidArgument",
        ),
        (doc(f"<ID>{'x' * 256}</ID><Filter/>{ON}{EXPIRE}"), "InvalidArgument"),
        (
            doc(f"<ID>a</ID><Filter/>{ON}{EXPIRE}", f"<ID>a</ID><Filter/>{ON}{EXPIRE}"),
            "InvalidArgument",
        ),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<NoncurrentVersionExpiration><NoncurrentDays>1"
                "</NoncurrentDays><NewerNoncurrentVersions>101</NewerNoncurrentVersions>"
                "</NoncurrentVersionExpiration>"
            ),
            "InvalidArgument",
        ),
        (
            doc(
                f"<ID>a</ID><Filter><And><ObjectSizeGreaterThan>9</ObjectSizeGreaterThan>"
                f"<ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter>{ON}{EXPIRE}"
            ),
            "InvalidArgument",
        ),
        (doc(f"<ID>a</ID><Filter/>{ON}"), "InvalidRequest"),  # no action
        (
            doc(
                f"<ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{ON}"
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                "</AbortIncompleteMultipartUpload>"
            ),
            "InvalidRequest",
        ),
        (
            doc(
                f"<ID>a</ID><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{ON}"
                "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                "</Expiration>"
            ),
            "InvalidRequest",
        ),
        (
            doc(
                f"<ID>a</ID><Filter><And><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k"
                f"</Key><Value>2</Value></Tag></And></Filter>{ON}{EXPIRE}"
            ),
            "InvalidRequest",
        ),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<Transition><Days>30</Days><StorageClass>GLACIER"
                "</StorageClass></Transition>"
            ),
            "InvalidStorageClass",
        ),
        (
            doc(
                f"<ID>a</ID><Filter/>{ON}<NoncurrentVersionTransition><NoncurrentDays>30"
                "</NoncurrentDays><StorageClass>GLACIER</StorageClass>"
                "</NoncurrentVersionTransition>"
            ),
            "InvalidStorageClass",
        ),
        (
            doc(*[f"<ID>r{i}</ID><Filter/>{ON}{EXPIRE}" for i in range(RULES_MAX + 1)]),
            "MalformedXML",
        ),
    ],
)
def test_refused_documents(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse_lifecycle(body)
    assert excinfo.value.code == code


def test_a_thousand_rules_are_allowed() -> None:
    rules = [f"<ID>r{i}</ID><Filter/>{ON}{EXPIRE}" for i in range(RULES_MAX)]
    assert len(parse_lifecycle(doc(*rules)).rules) == RULES_MAX
