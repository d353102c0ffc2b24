"""The pure parts of api/object_lock.py: lock headers, lock documents, integrity, HEAD headers."""

from __future__ import annotations

import pytest

from api.errors import S3Error
from api.object_lock import (
    has_integrity_check,
    lock_headers,
    parse_legal_hold,
    parse_lock_configuration,
    parse_lock_headers,
    parse_retention,
    parse_until,
    render_lock_configuration,
)
from storage.lock_mutations import BucketLock, LockRequest
from storage.lock_state import LockState
from storage.lww import Stamp

NOW = 1_800_000_000_000
FUTURE = "2027-03-01T12:00:00Z"
FUTURE_MS = 1_803_902_400_000


def code(call: object, *args: object) -> str:
    with pytest.raises(S3Error) as excinfo:
        call(*args)  # type: ignore[operator]
    return excinfo.value.code


def test_retain_until_dates_in_the_forms_clients_send() -> None:
    assert parse_until(FUTURE) == FUTURE_MS
    assert parse_until("2027-03-01T12:00:00.250Z") == FUTURE_MS + 250
    assert parse_until("2027-03-01T13:00:00+01:00") == FUTURE_MS
    assert code(parse_until, "2027-03-01T12:00:00") == "InvalidArgument"  # no zone
    assert code(parse_until, "tomorrow") == "InvalidArgument"


def test_lock_headers_of_a_write() -> None:
    assert parse_lock_headers({}, NOW) is None
    both = {"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": FUTURE}
    assert parse_lock_headers(both, NOW) == LockRequest("COMPLIANCE", FUTURE_MS)
    held = {"x-amz-object-lock-legal-hold": "ON"}
    assert parse_lock_headers(held, NOW) == LockRequest(legal_hold=True)
    assert parse_lock_headers({"x-amz-object-lock-legal-hold": "OFF"}, NOW) == LockRequest()
    for bad in (
        {"x-amz-object-lock-mode": "COMPLIANCE"},
        {"x-amz-object-lock-retain-until-date": FUTURE},
        {**both, "x-amz-object-lock-mode": "compliance"},
        {**both, "x-amz-object-lock-retain-until-date": "2001-01-01T00:00:00Z"},
        {"x-amz-object-lock-legal-hold": "on"},
    ):
        assert code(parse_lock_headers, bad, NOW) == "InvalidArgument", bad


def test_integrity_is_content_md5_or_a_checksum_header_or_trailer() -> None:
    assert not has_integrity_check({})
    assert not has_integrity_check({"x-amz-checksum-algorithm": "CRC32"})
    assert has_integrity_check({"content-md5": "x"})
    assert has_integrity_check({"x-amz-checksum-crc32": "AAAAAA=="})
    assert has_integrity_check({"x-amz-content-sha256": "ab" * 32})  # minio-py over HTTP
    assert not has_integrity_check({"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert not has_integrity_check({"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"})
    assert has_integrity_check({"x-amz-trailer": "x-amz-checksum-crc64nvme"})
    assert has_integrity_check({"x-amz-sdk-checksum-algorithm": "CRC32"})


def configuration(rule: str) -> bytes:
    return (
        "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
        f"{rule}</ObjectLockConfiguration>"
    ).encode()


def test_lock_configuration_documents() -> None:
    assert parse_lock_configuration(configuration("")) == BucketLock()
    days = "<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>5</Days></DefaultRetention></Rule>"
    assert parse_lock_configuration(configuration(days)) == BucketLock("GOVERNANCE", days=5)
    for config in (BucketLock(), BucketLock("COMPLIANCE", years=3), BucketLock("GOVERNANCE", 7)):
        assert parse_lock_configuration(render_lock_configuration(config)) == config
    malformed = [
        b"<ObjectLockConfiguration/>",
        configuration("<Rule/>"),
        configuration(days.replace("GOVERNANCE", "NONE")),
        configuration(days.replace("<Days>5</Days>", "<Days>5</Days><Years>1</Years>")),
        configuration(days.replace("<Days>5</Days>", "")),
        configuration(days.replace("5", "five")),
        b"<Other/>",
    ]
    for body in malformed:
        assert code(parse_lock_configuration, body) == "MalformedXML", body
    for period in ("<Days>0</Days>", "<Days>-1</Days>", "<Days>36501</Days>", "<Years>101</Years>"):
        body = configuration(days.replace("<Days>5</Days>", period))
        assert code(parse_lock_configuration, body) == "InvalidArgument", period


def test_retention_and_legal_hold_documents() -> None:
    retention = f"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{FUTURE}</RetainUntilDate>"
    assert parse_retention((retention + "</Retention>").encode(), NOW) == ("GOVERNANCE", FUTURE_MS)
    assert parse_retention(b"<Retention/>", NOW) == (None, None)
    assert code(parse_retention, b"<Retention><Mode>GOVERNANCE</Mode></Retention>", NOW) == (
        "MalformedXML"
    )
    assert code(parse_retention, (retention + "</Retention>").encode(), FUTURE_MS) == (
        "InvalidArgument"
    )
    assert parse_legal_hold(b"<LegalHold><Status>ON</Status></LegalHold>")
    assert not parse_legal_hold(b"<LegalHold><Status>OFF</Status></LegalHold>")
    assert code(parse_legal_hold, b"<LegalHold><Status>on</Status></LegalHold>") == "MalformedXML"
    assert code(parse_legal_hold, b"<LegalHold/>") == "MalformedXML"


def test_what_head_and_get_say_of_a_lock() -> None:
    assert lock_headers(None) == {}
    state = LockState(compliance_until_ms=FUTURE_MS)
    assert lock_headers(state) == {
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-object-lock-retain-until-date": "2027-03-01T12:00:00.000Z",
    }
    held = LockState().with_hold(Stamp(5, "a"))
    assert lock_headers(held) == {"x-amz-object-lock-legal-hold": "ON"}
    assert lock_headers(held.without_hold()) == {"x-amz-object-lock-legal-hold": "OFF"}
