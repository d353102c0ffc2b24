"""The bucket settings page's documents: the S3 XML (and JSON) bodies it reads and writes.

Pure functions, no I/O. Documents S3 answers are parsed with defusedxml and their namespace
dropped, so a rule read back can be put back as it was (the page edits lifecycle rules by
reading the whole configuration, changing it and putting it whole, as AWS requires).
What the user typed is untrusted: a malformed value raises :class:`FormError`, with a message
for the page; what S3 itself must decide (a method CORS does not know, a tag key too long)
is left to S3, whose error the page then shows.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import defusedxml.ElementTree as SafeElementTree
import defusedxml.minidom as SafeMinidom

S3_NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
# awscli's --cors-configuration names (JSON) -> the CORSRule element each value becomes.
CORS_LISTS: Final = {
    "AllowedHeaders": "AllowedHeader",
    "AllowedMethods": "AllowedMethod",
    "AllowedOrigins": "AllowedOrigin",
    "ExposeHeaders": "ExposeHeader",
}
CORS_FIELDS: Final = frozenset({"ID", "MaxAgeSeconds", *CORS_LISTS})
LOCK_MODES: Final = ("GOVERNANCE", "COMPLIANCE")
DAYS_DIGITS_MAX: Final = 9  # a whole number of days, not a number big enough to overflow


class FormError(ValueError):
    """Form input the console cannot even turn into a request; the message is for the page."""


# ---- reading documents ------------------------------------------------------------------------


def parse_document(body: bytes) -> ElementTree.Element:
    """An XML document S3 answered, with every element's namespace dropped."""
    root: ElementTree.Element = SafeElementTree.fromstring(body)
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def pretty_xml(body: bytes) -> str:
    """A document indented for reading (shown read-only; S3 keeps its own form)."""
    text: str = SafeMinidom.parseString(body).toprettyxml(indent="  ")
    return "\n".join(line for line in text.splitlines() if line.strip())


def render(root: ElementTree.Element) -> bytes:
    """The document to send: S3's namespace on the root, UTF-8 with a declaration."""
    root.set("xmlns", S3_NAMESPACE)
    body: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _child(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


# ---- versioning and object lock ---------------------------------------------------------------


def versioning_status(body: bytes) -> str:
    """GetBucketVersioning's answer as the page names it: no Status means never versioned."""
    return (parse_document(body).findtext("Status") or "").strip() or "Unversioned"


def versioning_document(status: str) -> bytes:
    if status not in ("Enabled", "Suspended"):
        raise FormError("Versioning can only be Enabled or Suspended.")
    root = ElementTree.Element("VersioningConfiguration")
    _child(root, "Status", status)
    return render(root)


@dataclass(frozen=True)
class LockView:
    """A bucket's object lock: enabled (always, once read), and its default retention."""

    mode: str | None = None
    days: int | None = None
    years: int | None = None

    @property
    def retention(self) -> str:
        if self.mode is None:
            return "none"
        if self.days is not None:
            return f"{self.mode}, {self.days} day{'s' if self.days != 1 else ''}"
        return f"{self.mode}, {self.years} year{'s' if self.years != 1 else ''}"


def lock_view(body: bytes) -> LockView:
    retention = parse_document(body).find("Rule/DefaultRetention")
    if retention is None:
        return LockView()
    days, years = retention.findtext("Days"), retention.findtext("Years")
    return LockView(
        retention.findtext("Mode"),
        int(days) if days and days.isdigit() else None,
        int(years) if years and years.isdigit() else None,
    )


def lock_document(mode: str, period: str, unit: str) -> bytes:
    """ObjectLockConfiguration enabling the lock, with a default retention unless ``mode``
    is "none" (which removes it: the lock itself stays on, as on AWS)."""
    root = ElementTree.Element("ObjectLockConfiguration")
    _child(root, "ObjectLockEnabled", "Enabled")
    if mode == "none":
        return render(root)
    if mode not in LOCK_MODES:
        raise FormError("The retention mode must be GOVERNANCE or COMPLIANCE.")
    if unit not in ("Days", "Years"):
        raise FormError("The retention period is counted in Days or Years.")
    retention = _child(_child(root, "Rule"), "DefaultRetention")
    _child(retention, "Mode", mode)
    _child(retention, unit, str(whole_number(period, "The retention period")))
    return render(root)


def whole_number(text: str, what: str) -> int:
    """A positive whole number typed in a form (S3 decides the range it accepts)."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > DAYS_DIGITS_MAX:
        raise FormError(f"{what} must be a whole number of at most {DAYS_DIGITS_MAX} digits.")
    return int(text)


# ---- lifecycle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleRuleView:
    """One lifecycle rule as the page's table shows it ('' where the rule has no such part)."""

    rule_id: str
    status: str
    scope: str
    expiration: str
    noncurrent: str
    abort_days: str
    delete_markers: str


def lifecycle_rules(root: ElementTree.Element) -> list[LifecycleRuleView]:
    return [_rule_view(rule) for rule in root.findall("Rule")]


def _rule_view(rule: ElementTree.Element) -> LifecycleRuleView:
    expiration = rule.find("Expiration")
    days = _days(rule.findtext("Expiration/Days"))
    date = (rule.findtext("Expiration/Date") or "")[:10]
    noncurrent = _days(rule.findtext("NoncurrentVersionExpiration/NoncurrentDays"))
    newer = rule.findtext("NoncurrentVersionExpiration/NewerNoncurrentVersions")
    if noncurrent and newer:
        noncurrent += f", keeping {newer} newer"
    markers = expiration is not None and expiration.findtext("ExpiredObjectDeleteMarker") == "true"
    return LifecycleRuleView(
        rule_id=rule.findtext("ID") or "",
        status=rule.findtext("Status") or "",
        scope=_scope(rule),
        expiration=days or (f"on {date}" if date else ""),
        noncurrent=noncurrent,
        abort_days=_days(rule.findtext("AbortIncompleteMultipartUpload/DaysAfterInitiation")),
        delete_markers="removed when expired" if markers else "",
    )


def _days(text: str | None) -> str:
    if not text:
        return ""
    return f"{text} day" if text == "1" else f"{text} days"


def _scope(rule: ElementTree.Element) -> str:
    """Which objects a rule applies to, in words: its prefix, tags and sizes."""
    legacy = rule.find("Prefix")
    if legacy is not None:
        return _prefix_words(legacy.text or "")
    found = rule.find("Filter")
    if found is None or len(found) == 0:
        return "all objects"
    condition = found.find("And")
    parts = list(condition if condition is not None else found)
    return "; ".join(_condition_words(part) for part in parts) or "all objects"


def _prefix_words(prefix: str) -> str:
    return f"prefix {prefix}" if prefix else "all objects"


def _condition_words(part: ElementTree.Element) -> str:
    if part.tag == "Prefix":
        return _prefix_words(part.text or "")
    if part.tag == "Tag":
        return f"tag {part.findtext('Key') or ''}={part.findtext('Value') or ''}"
    if part.tag == "ObjectSizeGreaterThan":
        return f"larger than {part.text} bytes"
    if part.tag == "ObjectSizeLessThan":
        return f"smaller than {part.text} bytes"
    return part.tag


@dataclass(frozen=True)
class NewRule:
    """The add-a-rule form, read: each day count None when left empty."""

    rule_id: str
    prefix: str
    expiration_days: int | None
    noncurrent_days: int | None
    abort_days: int | None
    delete_markers: bool


def new_rule(form: dict[str, str]) -> NewRule:
    def days(name: str, what: str) -> int | None:
        text = form.get(name, "").strip()
        return whole_number(text, what) if text else None

    return NewRule(
        rule_id=form.get("rule_id", "").strip(),
        prefix=form.get("prefix", ""),
        expiration_days=days("expiration_days", "Expiration days"),
        noncurrent_days=days("noncurrent_days", "Noncurrent version days"),
        abort_days=days("abort_days", "Abort incomplete multipart upload days"),
        delete_markers=form.get("delete_markers") == "on",
    )


def with_rule(current: ElementTree.Element | None, rule: NewRule) -> bytes:
    """The whole configuration with ``rule`` appended (S3 checks the rule: an action is
    needed, IDs are unique, days are positive, delete markers go without days)."""
    root = current if current is not None else ElementTree.Element("LifecycleConfiguration")
    element = _child(root, "Rule")
    if rule.rule_id:  # else S3 makes one up, as AWS does
        _child(element, "ID", rule.rule_id)
    _child(_child(element, "Filter"), "Prefix", rule.prefix)
    _child(element, "Status", "Enabled")
    if rule.expiration_days is not None or rule.delete_markers:
        expiration = _child(element, "Expiration")
        if rule.expiration_days is not None:
            _child(expiration, "Days", str(rule.expiration_days))
        if rule.delete_markers:
            _child(expiration, "ExpiredObjectDeleteMarker", "true")
    if rule.noncurrent_days is not None:
        noncurrent = _child(element, "NoncurrentVersionExpiration")
        _child(noncurrent, "NoncurrentDays", str(rule.noncurrent_days))
    if rule.abort_days is not None:
        abort = _child(element, "AbortIncompleteMultipartUpload")
        _child(abort, "DaysAfterInitiation", str(rule.abort_days))
    return render(root)


def without_rule(current: ElementTree.Element, rule_id: str) -> bytes | None:
    """The configuration without the rule ``rule_id``; None when no rule is left (delete the
    configuration: S3 refuses one with no rule)."""
    rules = current.findall("Rule")
    kept = [rule for rule in rules if (rule.findtext("ID") or "") != rule_id]
    if len(kept) == len(rules):
        raise FormError(f"There is no lifecycle rule {rule_id!r} (any more).")
    if not kept:
        return None
    for rule in rules:
        if rule not in kept:
            current.remove(rule)
    return render(current)


# ---- CORS -------------------------------------------------------------------------------------


def cors_rules(root: ElementTree.Element) -> list[dict[str, Any]]:
    """The rules as awscli's CORSRules JSON (the shape the page's editor takes back)."""
    rules = []
    for element in root.findall("CORSRule"):
        rule: dict[str, Any] = {}
        if element.findtext("ID"):
            rule["ID"] = element.findtext("ID")
        for plural, tag in CORS_LISTS.items():
            values = [value.text or "" for value in element.findall(tag)]
            if values:
                rule[plural] = values
        age = element.findtext("MaxAgeSeconds")
        if age is not None and age.isdigit():
            rule["MaxAgeSeconds"] = int(age)
        rules.append(rule)
    return rules


def cors_document(text: str) -> bytes:
    """The JSON typed in the editor (a list of rules, or {"CORSRules": [...]} as awscli
    takes it) -> a CORSConfiguration document."""
    document = parse_json(text, "The CORS rules")
    if isinstance(document, dict) and set(document) == {"CORSRules"}:
        document = document["CORSRules"]
    if not isinstance(document, list) or not document:
        raise FormError(
            'The CORS rules must be a non-empty JSON list of rules, such as [{"AllowedOrigins": '
            '["*"], "AllowedMethods": ["GET"]}] (use Delete to remove them all).'
        )
    root = ElementTree.Element("CORSConfiguration")
    for number, rule in enumerate(document, 1):
        _cors_rule(_child(root, "CORSRule"), rule, number)
    return render(root)


def _cors_rule(element: ElementTree.Element, rule: Any, number: int) -> None:
    if not isinstance(rule, dict):
        raise FormError(f"CORS rule {number} must be a JSON object.")
    unknown = sorted(set(rule) - CORS_FIELDS)
    if unknown:
        raise FormError(
            f"CORS rule {number} has unknown field {unknown[0]!r}; the fields are "
            f"{', '.join(sorted(CORS_FIELDS))}."
        )
    if "ID" in rule:
        _child(element, "ID", _cors_string(rule["ID"], number, "ID"))
    for plural, tag in CORS_LISTS.items():
        for value in _cors_list(rule.get(plural, []), number, plural):
            _child(element, tag, value)
    if "MaxAgeSeconds" in rule:
        age = rule["MaxAgeSeconds"]
        if isinstance(age, bool) or not isinstance(age, int) or age < 0:
            raise FormError(f"CORS rule {number}: MaxAgeSeconds must be a whole number >= 0.")
        _child(element, "MaxAgeSeconds", str(age))


def _cors_list(values: Any, number: int, name: str) -> list[str]:
    if not isinstance(values, list):
        raise FormError(f"CORS rule {number}: {name} must be a JSON list of strings.")
    return [_cors_string(value, number, name) for value in values]


def _cors_string(value: Any, number: int, name: str) -> str:
    if not isinstance(value, str):
        raise FormError(f"CORS rule {number}: each value of {name} must be a string.")
    return value


# ---- policy and tags --------------------------------------------------------------------------


def parse_json(text: str, what: str) -> Any:
    """The JSON typed in an editor; a syntax error names its line and column."""
    if not text.strip():
        raise FormError(f"{what}: the editor is empty.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FormError(
            f"{what}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        raise FormError(f"{what}: the JSON is nested too deeply.") from None


def pretty_json(text: str) -> str:
    """A stored policy indented for editing; as stored if it is somehow not JSON."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def tag_set(root: ElementTree.Element) -> list[tuple[str, str]]:
    return [
        (tag.findtext("Key") or "", tag.findtext("Value") or "")
        for tag in root.findall("TagSet/Tag")
    ]


def tagging_document(tags: Iterable[tuple[str, str]]) -> bytes:
    root = ElementTree.Element("Tagging")
    tag_set_element = _child(root, "TagSet")
    for key, value in tags:
        tag = _child(tag_set_element, "Tag")
        _child(tag, "Key", key)
        _child(tag, "Value", value)
    return render(root)
