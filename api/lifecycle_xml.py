"""Pure: the LifecycleConfiguration XML document, validated as AWS validates it, and rendered.

Parsing produces the storage model (storage/lifecycle.py), which is what is stored; rendering
turns it back into the document GetBucketLifecycleConfiguration answers. Errors, as AWS:
a document that does not fit the schema (unknown or repeated elements, a missing Status or
filter, Days together with Date...) is MalformedXML; a value out of range (Days not positive,
a Date not at midnight UTC, an ID too long or repeated) is InvalidArgument; combinations AWS
refuses by meaning (no action, tags with AbortIncompleteMultipartUpload or
ExpiredObjectDeleteMarker, repeated tag keys) are InvalidRequest. Transitions are refused with
InvalidStorageClass: lakenode has one storage class, so there is nowhere to transition to.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element

from api import xml
from api.errors import S3Error
from storage.lifecycle import DAY_MS, Filter, FilterForm, Lifecycle, Rule, Tags

RULES_MAX = 1000
RULE_ID_CHARS_MAX = 255
NEWER_NONCURRENT_MAX = 100
TRANSITIONS = ("Transition", "NoncurrentVersionTransition")
_RULE_ELEMENTS = frozenset(
    (
        "ID",
        "Status",
        "Filter",
        "Prefix",
        "Expiration",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
        *TRANSITIONS,
    )
)


def _malformed(detail: str) -> S3Error:
    error = xml.malformed_xml()
    return S3Error(error.code, f"{error.message} ({detail})")


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidArgument", message)


def generated_id() -> str:
    """A rule ID for a rule sent without one (AWS generates one too: base64 of a UUID)."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")


def parse_lifecycle(body: bytes) -> Lifecycle:
    """A LifecycleConfiguration document -> :class:`Lifecycle`, or the S3Error AWS answers."""
    root = xml.parse(body)
    if xml.local_name(root) != "LifecycleConfiguration":
        raise _malformed("the root element must be LifecycleConfiguration")
    rules = []
    for element in root:
        if xml.local_name(element) != "Rule":
            raise _malformed(f"unexpected element {xml.local_name(element)}")
        rules.append(_parse_rule(element))
    if not rules:
        raise _malformed("at least one Rule is required")
    if len(rules) > RULES_MAX:
        raise _malformed(f"at most {RULES_MAX} rules are allowed")
    seen: set[str] = set()
    for rule in rules:
        if rule.rule_id in seen:
            raise _invalid("Rule ID must be unique. Found same ID for more than one rule")
        seen.add(rule.rule_id)
    return Lifecycle(tuple(rules))


def _single(
    element: Element, allowed: frozenset[str], repeatable: tuple[str, ...] = ()
) -> dict[str, Element]:
    """The children of ``element`` by name; unknown or repeated ones are MalformedXML."""
    found: dict[str, Element] = {}
    for child in element:
        name = xml.local_name(child)
        if name not in allowed:
            raise _malformed(f"unexpected element {name} in {xml.local_name(element)}")
        if name in found and name not in repeatable:
            raise _malformed(f"{name} may appear once in {xml.local_name(element)}")
        found[name] = child
    return found


def _text(element: Element) -> str:
    if len(element):
        raise _malformed(f"{xml.local_name(element)} must be a value")
    return (element.text or "").strip()


def _parse_rule(element: Element) -> Rule:
    parts = _single(element, _RULE_ELEMENTS, repeatable=TRANSITIONS)
    for name in TRANSITIONS:
        if name in parts:
            raise S3Error(
                "InvalidStorageClass",
                f"{name} is not supported: lakenode has one storage class (STANDARD), so "
                "there is no other class to transition to. Use Expiration instead.",
            )
    rule_id = _text(parts["ID"]) if "ID" in parts else ""
    if len(rule_id) > RULE_ID_CHARS_MAX:
        raise _invalid(f"ID length should not exceed allowed limit of {RULE_ID_CHARS_MAX}")
    status = _text(parts["Status"]) if "Status" in parts else None
    if status not in ("Enabled", "Disabled"):
        raise _malformed("Status must be Enabled or Disabled")
    rule = Rule(
        rule_id=rule_id or generated_id(),
        enabled=status == "Enabled",
        filter=_rule_filter(parts),
        **_expiration(parts.get("Expiration")),
        **_noncurrent(parts.get("NoncurrentVersionExpiration")),
        abort_days=_abort(parts.get("AbortIncompleteMultipartUpload")),
    )
    _check_actions(rule)
    return rule


def _check_actions(rule: Rule) -> None:
    has_expiration = rule.expiration_days is not None or rule.expiration_date_ms is not None
    if not (
        has_expiration
        or rule.expired_object_delete_marker is not None
        or rule.noncurrent_days is not None
        or rule.abort_days is not None
    ):
        raise S3Error("InvalidRequest", "At least one action needs to be specified in a rule")
    flt = rule.filter
    sized = flt.size_greater_than is not None or flt.size_less_than is not None
    if rule.abort_days is not None and flt.tags:
        raise S3Error(
            "InvalidRequest", "Tags cannot be specified with AbortIncompleteMultipartUpload"
        )
    if rule.abort_days is not None and sized:
        raise S3Error(
            "InvalidRequest",
            "Object size filters cannot be specified with AbortIncompleteMultipartUpload",
        )
    if rule.expired_object_delete_marker and flt.tags:
        raise S3Error("InvalidRequest", "Tags cannot be specified with ExpiredObjectDeleteMarker")


# ---- the filter -------------------------------------------------------------------------------

_FILTER_ELEMENTS = frozenset(
    ("Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan")
)
_AND_ELEMENTS = frozenset(("Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"))


def _rule_filter(parts: dict[str, Element]) -> Filter:
    if "Filter" in parts and "Prefix" in parts:
        raise _malformed("a Rule takes Filter or Prefix, not both")
    if "Prefix" in parts:
        return Filter(FilterForm.LEGACY_PREFIX, prefix=_text(parts["Prefix"]))
    if "Filter" not in parts:
        raise _malformed("a Rule needs a Filter (or the legacy Prefix)")
    children = list(parts["Filter"])
    if not children:
        return Filter(FilterForm.EMPTY)
    if len(children) > 1:
        raise _malformed("a Filter holds one of Prefix, Tag, And, ObjectSizeGreaterThan, ...")
    child = children[0]
    name = xml.local_name(child)
    if name not in _FILTER_ELEMENTS:
        raise _malformed(f"unexpected element {name} in Filter")
    if name == "Prefix":
        return Filter(FilterForm.PREFIX, prefix=_text(child))
    if name == "Tag":
        return Filter(FilterForm.TAG, tags=(_tag(child),))
    if name == "ObjectSizeGreaterThan":
        return Filter(FilterForm.SIZE_GT, size_greater_than=_size(child))
    if name == "ObjectSizeLessThan":
        return Filter(FilterForm.SIZE_LT, size_less_than=_size(child))
    return _and(child)


def _and(element: Element) -> Filter:
    prefix, tags = "", []
    greater = less = None
    for child in element:
        name = xml.local_name(child)
        if name not in _AND_ELEMENTS:
            raise _malformed(f"unexpected element {name} in And")
        if name == "Prefix":
            prefix = _text(child)
        elif name == "Tag":
            tags.append(_tag(child))
        elif name == "ObjectSizeGreaterThan":
            greater = _size(child)
        else:
            less = _size(child)
    if len({key for key, _value in tags}) != len(tags):
        raise S3Error("InvalidRequest", "Duplicate Tag Keys are not allowed.")
    if greater is not None and less is not None and greater >= less:
        raise _invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
    return Filter(FilterForm.AND, prefix, tuple(tags), greater, less)


def _tag(element: Element) -> tuple[str, str]:
    parts = _single(element, frozenset(("Key", "Value")))
    if "Key" not in parts or "Value" not in parts:
        raise _malformed("a Tag needs Key and Value")
    key, value = parts["Key"].text or "", parts["Value"].text or ""
    if not key or len(key) > 128 or len(value) > 256:
        raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
    return key, value


def _integer(element: Element) -> int:
    text = _text(element)
    if not text.lstrip("-").isdigit():
        raise _malformed(f"{xml.local_name(element)} must be an integer")
    return int(text)


def _size(element: Element) -> int:
    value = _integer(element)
    if value < 0:
        raise _invalid(f"{xml.local_name(element)} must be a non-negative integer")
    return value


def _positive(element: Element, action: str) -> int:
    value = _integer(element)
    if value <= 0:
        raise _invalid(
            f"'{xml.local_name(element)}' for {action} action must be a positive integer"
        )
    return value


# ---- the actions ------------------------------------------------------------------------------


def _expiration(element: Element | None) -> dict[str, Any]:
    if element is None:
        return {}
    parts = _single(element, frozenset(("Days", "Date", "ExpiredObjectDeleteMarker")))
    if not parts:
        raise _malformed("Expiration needs Days, Date or ExpiredObjectDeleteMarker")
    if "Days" in parts and "Date" in parts:
        raise _malformed("Expiration takes Days or Date, not both")
    if "ExpiredObjectDeleteMarker" in parts and ("Days" in parts or "Date" in parts):
        raise _malformed(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle "
            "Expiration Policy"
        )
    result: dict[str, Any] = {}
    if "Days" in parts:
        result["expiration_days"] = _positive(parts["Days"], "Expiration")
    if "Date" in parts:
        result["expiration_date_ms"] = _midnight(_text(parts["Date"]))
    if "ExpiredObjectDeleteMarker" in parts:
        flag = _text(parts["ExpiredObjectDeleteMarker"]).lower()
        if flag not in ("true", "false"):
            raise _malformed("ExpiredObjectDeleteMarker must be true or false")
        result["expired_object_delete_marker"] = flag == "true"
    return result


def _midnight(text: str) -> int:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _malformed("Date must be an ISO 8601 date") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    epoch_ms = round(parsed.timestamp() * 1000)
    if epoch_ms % DAY_MS:
        raise _invalid("'Date' must be at midnight GMT")
    return epoch_ms


def _noncurrent(element: Element | None) -> dict[str, Any]:
    if element is None:
        return {}
    parts = _single(element, frozenset(("NoncurrentDays", "NewerNoncurrentVersions")))
    if "NoncurrentDays" not in parts:
        raise _malformed("NoncurrentVersionExpiration needs NoncurrentDays")
    result: dict[str, Any] = {
        "noncurrent_days": _positive(parts["NoncurrentDays"], "NoncurrentVersionExpiration")
    }
    if "NewerNoncurrentVersions" in parts:
        newer = _integer(parts["NewerNoncurrentVersions"])
        if not 0 < newer <= NEWER_NONCURRENT_MAX:
            raise _invalid(f"NewerNoncurrentVersions must be between 1 and {NEWER_NONCURRENT_MAX}")
        result["newer_noncurrent_versions"] = newer
    return result


def _abort(element: Element | None) -> int | None:
    if element is None:
        return None
    parts = _single(element, frozenset(("DaysAfterInitiation",)))
    if "DaysAfterInitiation" not in parts:
        raise _malformed("AbortIncompleteMultipartUpload needs DaysAfterInitiation")
    return _positive(parts["DaysAfterInitiation"], "AbortIncompleteMultipartUpload")


# ---- rendering --------------------------------------------------------------------------------


def render_lifecycle(lifecycle: Lifecycle) -> bytes:
    """The document GetBucketLifecycleConfiguration answers (the rules as they were put)."""
    return xml.render("LifecycleConfiguration", [("Rule", _rule_nodes(r)) for r in lifecycle.rules])


def _rule_nodes(rule: Rule) -> list[xml.Node]:
    nodes: list[xml.Node] = [("ID", rule.rule_id)]
    flt = rule.filter
    if flt.form == FilterForm.LEGACY_PREFIX:
        nodes.append(("Prefix", flt.prefix))
    else:
        nodes.append(("Filter", _filter_nodes(flt)))
    nodes.append(("Status", "Enabled" if rule.enabled else "Disabled"))
    expiration: list[xml.Node] = [
        ("Days", rule.expiration_days),
        (
            "Date",
            None if rule.expiration_date_ms is None else xml.iso8601_ms(rule.expiration_date_ms),
        ),
        ("ExpiredObjectDeleteMarker", rule.expired_object_delete_marker),
    ]
    if any(value is not None for _name, value in expiration):
        nodes.append(("Expiration", expiration))
    if rule.noncurrent_days is not None:
        nodes.append(
            (
                "NoncurrentVersionExpiration",
                [
                    ("NoncurrentDays", rule.noncurrent_days),
                    ("NewerNoncurrentVersions", rule.newer_noncurrent_versions),
                ],
            )
        )
    if rule.abort_days is not None:
        nodes.append(("AbortIncompleteMultipartUpload", [("DaysAfterInitiation", rule.abort_days)]))
    return nodes


def _tag_nodes(tags: Tags) -> list[xml.Node]:
    return [("Tag", [("Key", key), ("Value", value)]) for key, value in tags]


def _filter_nodes(flt: Filter) -> list[xml.Node]:
    if flt.form == FilterForm.PREFIX:
        return [("Prefix", flt.prefix)]
    if flt.form == FilterForm.TAG:
        return _tag_nodes(flt.tags)
    if flt.form == FilterForm.SIZE_GT:
        return [("ObjectSizeGreaterThan", flt.size_greater_than)]
    if flt.form == FilterForm.SIZE_LT:
        return [("ObjectSizeLessThan", flt.size_less_than)]
    if flt.form == FilterForm.AND:
        inner: list[xml.Node] = [("Prefix", flt.prefix or None)]
        inner += _tag_nodes(flt.tags)
        inner += [
            ("ObjectSizeGreaterThan", flt.size_greater_than),
            ("ObjectSizeLessThan", flt.size_less_than),
        ]
        return [("And", inner)]
    return []
