"""The POST policy of a browser upload: parsing and evaluation, pure (no I/O).

A POST form carries a base64 JSON document ``{"expiration": ..., "conditions": [...]}``
signed by the key that lets strangers upload. S3's rules, which this module applies:

* the policy is void after ``expiration`` (ISO 8601 UTC, e.g. ``2007-12-01T12:00:00.000Z``);
* each condition must hold: an exact match ``{"field": "value"}`` or
  ``["eq", "$field", "value"]``, a prefix ``["starts-with", "$field", "prefix"]`` (an
  empty prefix admits anything; for Content-Type each of a comma-separated list must
  match), or ``["content-length-range", min, max]`` on the file's size; field names and
  operators are case-insensitive, values are not;
* every field of the form must be named by a condition, except the signature fields,
  ``policy``, ``file`` and ``x-ignore-*`` fields (``bucket`` always counts as a field), so
  nobody can add metadata or a redirect the signer did not allow.

Field values are compared after ``${filename}`` is replaced. Errors are AWS's: a document
that cannot be read is InvalidPolicyDocument (400); a policy that refuses the form is
AccessDenied (403) with "Invalid according to Policy: ..."; a file outside the length
range is EntityTooSmall / EntityTooLarge.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.errors import S3Error

# Fields no condition has to name (lower case); plus every name starting with IGNORED_PREFIX.
EXEMPT_FIELDS = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
IGNORED_PREFIX = "x-ignore-"
_EXPIRATION = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
_ONE_PROPERTY = (
    "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."
)


@dataclass(frozen=True)
class Condition:
    """An ``eq`` or ``starts-with`` condition on one form field."""

    operator: str  # "eq" or "starts-with"
    field: str  # lower-case field name, without the "$"
    value: str
    text: str  # the condition as AWS quotes it when it fails
    names_field: bool = True  # written "$field"; without the "$" it never holds

    def holds(self, fields: Mapping[str, str]) -> bool:
        if not self.names_field:
            return False
        actual = fields.get(self.field, "")
        if self.operator == "eq":
            return actual == self.value
        if not self.value:
            return True  # an empty prefix admits any value, and a missing field
        if self.field == "content-type":
            # A list of content types: each must start with the prefix.
            return all(part.strip().startswith(self.value) for part in actual.split(","))
        return actual.startswith(self.value)


@dataclass(frozen=True)
class PostPolicy:
    expiration: datetime
    conditions: tuple[Condition, ...]
    length_min: int = 0
    length_max: int | None = None  # None: no content-length-range condition


def invalid_policy(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _refused(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


def _quoted(parts: list[Any]) -> str:
    return json.dumps(parts, ensure_ascii=False)


def parse_policy(encoded: str) -> PostPolicy:
    """Decode and validate the ``policy`` field; any defect is InvalidPolicyDocument."""
    try:
        raw = base64.b64decode("".join(encoded.split()), validate=True)
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, UnicodeDecodeError; RecursionError: absurd nesting
        raise invalid_policy("Invalid JSON.") from exc
    if not isinstance(document, dict):
        raise invalid_policy("Invalid JSON.")
    if "expiration" not in document:
        raise invalid_policy("Policy missing expiration.")
    expiration = _parse_expiration(document["expiration"])
    if "conditions" not in document:
        raise invalid_policy("Policy missing conditions.")
    items = document["conditions"]
    if not isinstance(items, list):
        raise invalid_policy("Invalid 'conditions' value: must be a List.")
    conditions: list[Condition] = []
    length_min, length_max = 0, None
    for item in items:
        parsed = _parse_condition(item)
        if isinstance(parsed, Condition):
            conditions.append(parsed)
        else:  # content-length-range: several ranges all apply
            length_min = max(length_min, parsed[0])
            length_max = parsed[1] if length_max is None else min(length_max, parsed[1])
    return PostPolicy(expiration, tuple(conditions), length_min, length_max)


def _parse_expiration(value: object) -> datetime:
    match = _EXPIRATION.fullmatch(value) if isinstance(value, str) else None
    if match is not None:
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass
    raise invalid_policy(f"Invalid 'expiration' value: '{value}'")


def _parse_condition(item: object) -> Condition | tuple[int, int]:
    if isinstance(item, dict):
        if len(item) != 1:
            raise invalid_policy(_ONE_PROPERTY)
        ((name, value),) = item.items()
        if not isinstance(value, str):
            raise invalid_policy(f"Invalid Simple-Condition: the value of {name!r} must be text.")
        return Condition("eq", name.lower(), value, _quoted(["eq", f"${name}", value]))
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise invalid_policy(f"Invalid Condition: {json.dumps(item, ensure_ascii=False)}")
    operator = item[0].lower()
    if operator == "content-length-range":
        return _length_range(item)
    if operator not in ("eq", "starts-with"):
        raise invalid_policy(f"Invalid Condition: unknown operation {item[0]!r}.")
    if len(item) != 3 or not all(isinstance(part, str) for part in item[1:]):
        raise invalid_policy(f"Invalid Condition: {operator} needs a field and a text value.")
    name, value = item[1], item[2]
    field = name[1:] if name.startswith("$") else name
    return Condition(operator, field.lower(), value, _quoted(item), name.startswith("$"))


def _length_range(item: list[Any]) -> tuple[int, int]:
    if len(item) != 3:
        raise invalid_policy("Invalid content-length-range: it needs a minimum and a maximum.")
    bounds = [_size(part) for part in item[1:]]
    if bounds[0] is None or bounds[1] is None:
        raise invalid_policy("Invalid content-length-range: sizes must be non-negative integers.")
    return bounds[0], bounds[1]


def _size(value: object) -> int | None:
    """A non-negative integer given as a JSON number or as decimal text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def check_policy(policy: PostPolicy, fields: Mapping[str, str], now: datetime) -> None:
    """Raise AccessDenied unless the form (lower-case names, ``bucket`` included) satisfies
    the policy at ``now``: not expired, every condition holds, every field is covered."""
    if now >= policy.expiration:
        raise _refused("Policy expired.")
    for condition in policy.conditions:
        if not condition.holds(fields):
            raise _refused(f"Policy Condition failed: {condition.text}")
    covered = {condition.field for condition in policy.conditions if condition.names_field}
    for name in fields:
        if name in EXEMPT_FIELDS or name.startswith(IGNORED_PREFIX) or name in covered:
            continue
        raise _refused(f"Extra input fields: {name}")


def check_length(policy: PostPolicy, size: int, final: bool) -> None:
    """EntityTooLarge as soon as ``size`` passes the maximum; EntityTooSmall at the end
    (``final``) when the file stayed under the minimum."""
    if policy.length_max is not None and size > policy.length_max:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    if final and size < policy.length_min:
        raise S3Error(
            "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
        )
