"""XML helpers: escaping every character class, timestamps, hostile bodies."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import S3Error
from api.xml import escape, iso8601_ms, parse, render


def test_escape_plain_text_is_unchanged() -> None:
    assert escape("photos/2024/a b-c_d.jpg") == "photos/2024/a b-c_d.jpg"


def test_escape_markup_quotes_and_control_characters() -> None:
    assert escape("a&b<c>\"d'e\x01") == "a&amp;b&lt;c&gt;&quot;d&apos;e&#1;"


@given(st.text(alphabet=st.characters(min_codepoint=32, blacklist_categories=("Cs",))))
def test_escaped_text_round_trips_through_an_xml_parser(text: str) -> None:
    root = parse(render("R", [("K", text)], namespace=False))
    assert (root[0].text or "") == text


@pytest.mark.parametrize("epoch_ms", [0, 999, 1_700_000_000_123, 1_795_400_634_716])
def test_iso8601_matches_datetime(epoch_ms: int) -> None:
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
    assert iso8601_ms(epoch_ms) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"<a>",
        b"not xml",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><a>&e;</a>',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>',
    ],
)
def test_malformed_or_hostile_xml_is_malformed_xml(body: bytes) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse(body)
    assert excinfo.value.code == "MalformedXML"
