"""XML bodies: rendering S3 responses and parsing untrusted request bodies (defusedxml)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

from api.errors import S3Error

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
Node = tuple[str, "str | int | bool | Iterable[Node] | None"]


def escape(text: str) -> str:
    # Also escapes quotes, and control characters that XML 1.0 cannot carry verbatim.
    out = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )
    if any(ord(c) < 32 for c in out):
        out = "".join(f"&#{ord(c)};" if ord(c) < 32 else c for c in out)
    return out


def render(root: str, children: Iterable[Node], namespace: bool = True) -> bytes:
    """Render ``<root xmlns=...>children</root>``; a child is (tag, value-or-children)."""
    xmlns = f' xmlns="{S3_NAMESPACE}"' if namespace else ""
    parts = [XML_DECLARATION, f"<{root}{xmlns}>"]
    _render_children(children, parts)
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


def iso8601_ms(epoch_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse(body: bytes) -> Element:
    """Parse an untrusted XML body; anything malformed or hostile is MalformedXML."""
    try:
        root = SafeElementTree.fromstring(body)
    except (SafeElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema",
        ) from exc
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
