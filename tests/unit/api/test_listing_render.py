"""A listing's entries, rendered one f-string each, give the same bytes as the node renderer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api import xml
from api.listing import _contents, encode_key
from api.settings import owner_id
from storage.listing import ListEntry, ListPage

# Markup, quotes, control characters, '/', multi-byte UTF-8 and characters url-encoding changes.
TEXT = st.text(alphabet="a/&<>\"'\x01\x1f é😀%+ ?", min_size=1, max_size=12)
ENTRIES = st.lists(
    st.builds(
        ListEntry,
        TEXT,
        st.integers(min_value=0, max_value=1 << 40),
        st.one_of(st.just("d41d8cd98f00b204e9800998ecf8427e-3"), TEXT),
        st.integers(min_value=0, max_value=4_102_444_800_000),
    ),
    max_size=5,
)


def _as_nodes(page: ListPage, encoding: str | None, owner: str | None) -> list[xml.Node]:
    """The generic node tree of Contents and CommonPrefixes (what _contents must equal)."""
    nodes: list[xml.Node] = []
    for entry in page.entries:
        fields: list[xml.Node] = [
            ("Key", encode_key(entry.key, encoding)),
            ("LastModified", xml.iso8601_ms(entry.last_modified_ms)),
            ("ETag", f'"{entry.etag}"'),
            ("Size", entry.size),
        ]
        if owner is not None:
            fields.append(("Owner", [("ID", owner_id(owner)), ("DisplayName", owner)]))
        fields.append(("StorageClass", "STANDARD"))
        nodes.append(("Contents", fields))
    nodes.extend(
        ("CommonPrefixes", [("Prefix", encode_key(p, encoding))]) for p in page.common_prefixes
    )
    return nodes


@given(
    entries=ENTRIES,
    prefixes=st.lists(TEXT, max_size=3),
    encoding=st.sampled_from([None, "url"]),
    owner=st.one_of(st.none(), TEXT),
)
def test_rendered_entries_equal_the_node_rendering(
    entries: list[ListEntry], prefixes: list[str], encoding: str | None, owner: str | None
) -> None:
    page = ListPage(entries, prefixes, False, None)
    fast = xml.render(
        "ListBucketResult", [("Name", "b")], rendered=_contents(page, encoding, owner)
    )
    generic = xml.render("ListBucketResult", [("Name", "b"), *_as_nodes(page, encoding, owner)])
    assert fast == generic


def test_an_entry_renders_as_s3_writes_it() -> None:
    page = ListPage([ListEntry("a&b", 5, "abc", 1_700_000_000_123)], ["p/"], True, "p/")
    assert "".join(_contents(page, None, None)) == (
        "<Contents><Key>a&amp;b</Key><LastModified>2023-11-14T22:13:20.123Z</LastModified>"
        "<ETag>&quot;abc&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>"
    )
