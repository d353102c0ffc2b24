"""CORS rule parsing and matching, tag validation: pure functions."""

from __future__ import annotations

import pytest

from api.cors import parse_cors, render_cors
from api.errors import S3Error
from api.tagging import parse_tagging_header, parse_tagging_xml, render_tagging, validate_tags

DOCUMENT = (
    b"<CORSConfiguration><CORSRule><ID>r</ID><AllowedOrigin>https://*.example.com"
    b"</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader>"
    b"<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>30</MaxAgeSeconds></CORSRule>"
    b"</CORSConfiguration>"
)


def test_cors_document_round_trips_through_its_normalized_form() -> None:
    rules = parse_cors(DOCUMENT)
    assert parse_cors(render_cors(rules)) == rules
    (rule,) = rules
    assert (rule.rule_id, rule.max_age, rule.expose) == ("r", 30, ("ETag",))


@pytest.mark.parametrize(
    ("origin", "method", "expected"),
    [
        ("https://a.example.com", "GET", "https://a.example.com"),
        ("https://a.b.example.com", "GET", "https://a.b.example.com"),
        ("https://a.example.com", "PUT", None),
        ("http://a.example.com", "GET", None),
        ("https://example.com", "GET", None),
        ("https://a.example.com.evil", "GET", None),
    ],
)
def test_origin_wildcards(origin: str, method: str, expected: str | None) -> None:
    (rule,) = parse_cors(DOCUMENT)
    assert rule.allowed_origin(origin, method) == expected


def test_allowed_headers_are_wildcards_without_case() -> None:
    (rule,) = parse_cors(DOCUMENT)
    assert rule.allows_headers(["x-amz-date", "x-amz-meta-a"])
    assert rule.allows_headers(["X-AMZ-DATE".lower()])
    assert rule.allows_headers([])
    assert not rule.allows_headers(["x-amz-date", "authorization"])


def test_tag_header_decodes_url_query_form() -> None:
    assert parse_tagging_header("a=1&b%20c=d%2Fe&e=") == (("a", "1"), ("b c", "d/e"), ("e", ""))
    assert parse_tagging_header("") == ()
    with pytest.raises(S3Error) as excinfo:
        parse_tagging_header("a=1&a=2")
    assert excinfo.value.code == "InvalidArgument"


@pytest.mark.parametrize(
    "tags",
    [
        tuple((f"k{i}", "v") for i in range(11)),
        (("k" * 129, "v"),),
        (("k", "v" * 257),),
        (("AWS:x", "v"),),
        (("k", "1"), ("k", "2")),
        (("", "v"),),
    ],
)
def test_invalid_tags(tags: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(S3Error) as excinfo:
        validate_tags(tags, 10)
    assert excinfo.value.code == "InvalidTag"


def test_tagging_xml_round_trip() -> None:
    tags = (("a", "<&>"), ("b", ""))
    assert parse_tagging_xml(render_tagging(tags), 10) == tags
