"""The AWS policy language subset that users write, parsed and evaluated. Pure: no I/O.

Supported: ``Version``, ``Statement`` (one or a list) with ``Sid``, ``Effect`` (Allow|Deny),
``Principal`` (``"*"``, ``{"AWS": "*"}``, ``{"AWS": [key ids or IAM user ARNs]}``), ``Action``
(``s3:*``, ``s3:Get*``... case-insensitive), ``Resource`` (``arn:aws:s3:::bucket`` and
``arn:aws:s3:::bucket/prefix*`` with ``*`` and ``?`` wildcards), ``Condition`` with the
operators StringEquals, StringNotEquals, StringLike, StringNotLike, IpAddress, NotIpAddress,
Bool, DateLessThan(Equals), DateGreaterThan(Equals), on context keys such as ``s3:prefix``,
``s3:delimiter``, ``aws:SourceIp``, ``aws:SecureTransport``, ``aws:CurrentTime``.

Evaluation follows AWS: an explicit Deny wins over any Allow; otherwise an Allow that matches
grants; otherwise nothing is decided (implicit deny). Within a condition block every operator
and every key must hold (AND); the values listed for one key are alternatives (OR). A context
key that is absent makes a positive operator false and a negated one true.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from api.errors import S3Error

ARN_PREFIX = "arn:aws:s3:::"
POLICY_VERSIONS = ("2012-10-17", "2008-10-17")
_IAM_USER = re.compile(r"^arn:aws:iam::[^:]*:user/(.+)$")
CONDITION_OPERATORS = frozenset(
    {
        "StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "IpAddress",
        "NotIpAddress", "Bool", "DateLessThan", "DateLessThanEquals", "DateGreaterThan",
        "DateGreaterThanEquals",
    }
)  # fmt: skip


class Decision(Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True)
class Condition:
    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    effect: Decision
    principals: frozenset[str] | None  # None: identity policy (no Principal element)
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class PolicyRequest:
    principal: str | None  # the access key, or None for an anonymous request
    action: str  # "s3:GetObject"
    resource: str  # "arn:aws:s3:::bucket/key"
    context: Mapping[str, str]


def malformed(detail: str) -> S3Error:
    return S3Error("MalformedPolicy", f"Policy has invalid {detail}")


def parse_policy(text: str, bucket: str | None = None) -> Policy:
    """Parse a bucket policy (``bucket`` given: Principal required, resources in the bucket)
    or an identity policy (no Principal). Anything we cannot honour is MalformedPolicy."""
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise malformed("JSON") from exc
    if not isinstance(document, dict) or "Statement" not in document:
        raise malformed("document: it needs a Statement")
    if document.get("Version", POLICY_VERSIONS[0]) not in POLICY_VERSIONS:
        raise malformed(f"Version: use {POLICY_VERSIONS[0]}")
    raw = document["Statement"]
    statements = raw if isinstance(raw, list) else [raw]
    if not statements:
        raise malformed("Statement: it is empty")
    return Policy(tuple(_parse_statement(s, bucket) for s in statements))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise malformed(what)
    return tuple(items)


def _parse_statement(raw: Any, bucket: str | None) -> Statement:
    if not isinstance(raw, dict):
        raise malformed("Statement")
    unknown = set(raw) - {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
    if unknown:
        raise malformed(
            f"statement element(s) {sorted(unknown)} (NotAction, NotPrincipal and "
            "NotResource are not supported)"
        )
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise malformed("Effect: use Allow or Deny")
    if "Action" not in raw or "Resource" not in raw:
        raise malformed("statement: Action and Resource are required")
    actions = tuple(a.lower() for a in _strings(raw["Action"], "Action"))
    for action in actions:
        if not (action == "*" or action.startswith("s3:")):
            raise malformed(f"Action {action!r}: only s3 actions apply")
    resources = _strings(raw["Resource"], "Resource")
    for resource in resources:
        _check_resource(resource, bucket)
    principals = _parse_principal(raw["Principal"]) if "Principal" in raw else None
    if bucket is not None and principals is None:
        raise malformed("statement: a bucket policy needs a Principal")
    if bucket is None and principals is not None:
        raise malformed("statement: a key's own policy must not name a Principal")
    return Statement(
        Decision(raw["Effect"]),
        principals,
        actions,
        resources,
        _parse_conditions(raw.get("Condition", {})),
    )


def _check_resource(resource: str, bucket: str | None) -> None:
    if resource == "*":
        return
    if not resource.startswith(ARN_PREFIX) or len(resource) == len(ARN_PREFIX):
        raise malformed(f"Resource {resource!r}: use arn:aws:s3:::bucket[/key]")
    if bucket is not None:
        named = resource[len(ARN_PREFIX) :].split("/", 1)[0]
        if not fnmatch.fnmatchcase(bucket, named):
            raise malformed(f"Resource {resource!r}: it must refer to bucket {bucket!r}")


def _parse_principal(raw: Any) -> frozenset[str]:
    if raw == "*":
        return frozenset({"*"})
    if not isinstance(raw, dict) or set(raw) != {"AWS"}:
        raise malformed('Principal: use "*" or {"AWS": [...]}')
    principals = set()
    for item in _strings(raw["AWS"], "Principal"):
        user = _IAM_USER.match(item)
        principals.add(user.group(1) if user else item)
    return frozenset(principals)


def _parse_conditions(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise malformed("Condition")
    conditions = []
    for operator, block in raw.items():
        if operator not in CONDITION_OPERATORS:
            raise malformed(f"Condition operator {operator!r}")
        if not isinstance(block, dict) or not block:
            raise malformed(f"Condition block for {operator}")
        for key, values in block.items():
            items = values if isinstance(values, list) else [values]
            strings = _strings([_condition_text(v) for v in items], f"Condition values for {key}")
            _check_condition_values(operator, strings)
            conditions.append(Condition(operator, key.lower(), strings))
    return tuple(conditions)


def _condition_text(value: Any) -> Any:
    """JSON booleans and numbers as the strings AWS compares them as ("true", "10")."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_condition_values(operator: str, values: tuple[str, ...]) -> None:
    try:
        if operator.endswith("IpAddress"):
            for value in values:
                ipaddress.ip_network(value, strict=False)
        elif operator.startswith("Date"):
            for value in values:
                _parse_time(value)
    except ValueError as exc:
        raise malformed(f"Condition value for {operator}: {exc}") from exc


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---- evaluation ------------------------------------------------------------------------------


def evaluate(policy: Policy, request: PolicyRequest) -> Decision | None:
    """Deny if any matching statement denies; Allow if one allows; else None."""
    allowed = False
    for statement in policy.statements:
        if not _applies(statement, request):
            continue
        if statement.effect is Decision.DENY:
            return Decision.DENY
        allowed = True
    return Decision.ALLOW if allowed else None


def _applies(statement: Statement, request: PolicyRequest) -> bool:
    if statement.principals is not None and not _principal_matches(
        statement.principals, request.principal
    ):
        return False
    action = request.action.lower()
    if not any(fnmatch.fnmatchcase(action, pattern) for pattern in statement.actions):
        return False
    if not any(_resource_matches(pattern, request.resource) for pattern in statement.resources):
        return False
    context = {key.lower(): value for key, value in request.context.items()}
    return all(_condition_holds(c, context) for c in statement.conditions)


def _principal_matches(principals: frozenset[str], principal: str | None) -> bool:
    return "*" in principals or (principal is not None and principal in principals)


def _resource_matches(pattern: str, resource: str) -> bool:
    # fnmatch's [...] classes are not part of the policy language: escape them.
    return fnmatch.fnmatchcase(resource, pattern.replace("[", "[[]"))


def _condition_holds(condition: Condition, context: Mapping[str, str]) -> bool:
    value = context.get(condition.key)
    negated = condition.operator.startswith(("StringNot", "NotIp"))
    if value is None:
        return negated
    matches = any(_value_matches(condition.operator, value, v) for v in condition.values)
    return not matches if negated else matches


def _value_matches(operator: str, actual: str, expected: str) -> bool:
    if operator in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if operator in ("StringLike", "StringNotLike"):
        return fnmatch.fnmatchcase(actual, expected.replace("[", "[[]"))
    if operator in ("IpAddress", "NotIpAddress"):
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return False
    if operator == "Bool":
        return actual.lower() == expected.lower()
    now, limit = _parse_time(actual), _parse_time(expected)
    return {
        "DateLessThan": now < limit,
        "DateLessThanEquals": now <= limit,
        "DateGreaterThan": now > limit,
        "DateGreaterThanEquals": now >= limit,
    }[operator]
