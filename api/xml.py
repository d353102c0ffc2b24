"""XML bodies: rendering S3 responses and parsing untrusted request bodies (defusedxml)."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

from api.errors import S3Error

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
Node = tuple[str, "str | int | bool | Iterable[Node] | None"]


_NEEDS_ESCAPE = re.compile(r"[&<>\"'\x00-\x1f]")
_CONTROL = re.compile(r"[\x00-\x1f]")


def escape(text: str) -> str:
    # Most keys need no escaping: one regex scan decides (listings escape thousands of keys).
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    out = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )
    # Control characters as numeric references (clients asking for them use encoding-type=url).
    return _CONTROL.sub(lambda match: f"&#{ord(match.group())};", out)


def render(
    root: str, children: Iterable[Node], namespace: bool = True, rendered: Iterable[str] = ()
) -> bytes:
    """Render ``<root xmlns=...>children</root>``; a child is (tag, value-or-children).

    ``rendered`` is XML already escaped and rendered by the caller, placed after the children:
    a listing's thousand entries are cheaper as one f-string each than as node trees.
    """
    xmlns = f' xmlns="{S3_NAMESPACE}"' if namespace else ""
    parts = [XML_DECLARATION, f"<{root}{xmlns}>"]
    _render_children(children, parts)
    parts.extend(rendered)
    parts.append(f"</{root}>")
    return "".join(parts).encode()


def _render_children(children: Iterable[Node], parts: list[str]) -> None:
    for tag, value in children:
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(f"<{tag}>{'true' if value else 'false'}</{tag}>")
        elif isinstance(value, str | int):
            parts.append(f"<{tag}>{escape(str(value))}</{tag}>")
        else:
            parts.append(f"<{tag}>")
            _render_children(value, parts)
            parts.append(f"</{tag}>")


@functools.lru_cache(maxsize=4096)
def _iso8601_second(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


def iso8601_ms(epoch_ms: int) -> str:
    """2024-01-31T12:00:00.123Z; the second part is cached (listings repeat seconds)."""
    return f"{_iso8601_second(epoch_ms // 1000)}.{epoch_ms % 1000:03d}Z"


def malformed_xml() -> S3Error:
    """AWS's MalformedXML: a body that does not parse or does not fit the document's schema."""
    return S3Error(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def parse(body: bytes) -> Element:
    """Parse an untrusted XML body; anything malformed or hostile is MalformedXML."""
    try:
        root = SafeElementTree.fromstring(body)
    except (SafeElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise malformed_xml() from exc
    assert isinstance(root, Element)
    return root


def local_name(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def children_named(element: Element, name: str) -> list[Element]:
    return [child for child in element if local_name(child) == name]


def child_text(element: Element, name: str) -> str | None:
    for child in element:
        if local_name(child) == name:
            return child.text or ""
    return None
