"""The AWS policy language that users write, parsed and evaluated. Pure: no I/O.

Supported: ``Version``, ``Statement`` (one or a list) with ``Sid``, ``Effect`` (Allow|Deny),
``Principal`` or ``NotPrincipal`` (``"*"``, ``{"AWS": "*"}``, ``{"AWS": [key ids or IAM user
ARNs]}``, ``{"CanonicalUser": [owner ids]}``), ``Action`` or ``NotAction`` (``s3:*``,
``s3:Get*``... case-insensitive), ``Resource`` or ``NotResource`` (``arn:aws:s3:::bucket`` and
``arn:aws:s3:::bucket/prefix*`` with ``*`` and ``?`` wildcards), and ``Condition`` with IAM's
operators: String*, Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*, each
also as ``...IfExists``, the set qualifiers ``ForAnyValue:`` / ``ForAllValues:``, and ``Null``.
Policy variables (``${aws:username}``, ``${s3:prefix}``, ``${key, 'default'}``, ``${*}``) are
substituted in resources and in String/Arn condition values of Version 2012-10-17 policies.

Evaluation follows AWS: an explicit Deny wins over any Allow; otherwise an Allow that matches
grants; otherwise nothing is decided (implicit deny). Within a condition block every operator
and every key must hold (AND); the values listed for one key are alternatives (OR). A context
key that is absent makes a positive operator false and a negated one true; ``...IfExists``
makes it true; ``ForAnyValue`` is false and ``ForAllValues`` true on an absent (empty) key.
A context value is one string or, for multi-valued keys (``s3:RequestObjectTagKeys``), a tuple.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from api.errors import S3Error
from api.settings import owner_id

ARN_PREFIX = "arn:aws:s3:::"
POLICY_VERSIONS = ("2012-10-17", "2008-10-17")
_IAM_USER = re.compile(r"^arn:aws:iam::[^:]*:user/(.+)$")
# Negated operators and the positive operator whose result they invert.
NEGATED_OPERATORS = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
POSITIVE_OPERATORS = frozenset(
    {
        "StringEquals", "StringEqualsIgnoreCase", "StringLike", "NumericEquals",
        "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan",
        "NumericGreaterThanEquals", "DateEquals", "DateLessThan", "DateLessThanEquals",
        "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
        "ArnEquals", "ArnLike",
    }
)  # fmt: skip
NULL_OPERATOR = "Null"
CONDITION_OPERATORS = POSITIVE_OPERATORS | frozenset(NEGATED_OPERATORS) | {NULL_OPERATOR}
IF_EXISTS = "IfExists"
SET_QUALIFIERS = ("ForAnyValue", "ForAllValues")
STATEMENT_ELEMENTS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
     "NotResource", "Condition"}
)  # fmt: skip

ContextValue = str | tuple[str, ...]


class Decision(Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True)
class Condition:
    operator: str  # the base operator: "StringEquals", "NotIpAddress", "Null"...
    key: str  # normalized by context_key()
    values: tuple[str, ...]
    if_exists: bool = False
    qualifier: str | None = None  # "ForAnyValue" | "ForAllValues" | None


@dataclass(frozen=True)
class Statement:
    effect: Decision
    principals: frozenset[str] | None  # None: identity policy (no Principal element)
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...]
    not_principal: bool = False  # principals lists who the statement does NOT apply to
    not_action: bool = False
    not_resource: bool = False
    variables: bool = True  # ${aws:username}... substituted (Version 2012-10-17 only)

    def condition_keys(self) -> frozenset[str]:
        return frozenset(c.key for c in self.conditions)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]

    def uses_key_prefix(self, prefix: str) -> bool:
        """Whether a condition reads a key starting with ``prefix`` (a lowercase name), so
        that a context value that costs a lookup is only fetched when a policy needs it."""
        return any(key.startswith(prefix) for s in self.statements for key in s.condition_keys())


@dataclass(frozen=True)
class PolicyRequest:
    principal: str | None  # the access key, or None for an anonymous request
    action: str  # "s3:GetObject"
    resource: str  # "arn:aws:s3:::bucket/key"
    context: Mapping[str, ContextValue]


def context_key(name: str) -> str:
    """Condition key names are case-insensitive; the tag key after ``/`` in
    ``s3:ExistingObjectTag/<key>`` is not (S3 tag keys are case-sensitive)."""
    head, slash, tail = name.partition("/")
    return head.lower() + slash + tail


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
    variables = document.get("Version") == POLICY_VERSIONS[0]
    return Policy(tuple(_parse_statement(s, bucket, variables) for s in statements))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise malformed(what)
    return tuple(items)


def _one_of(raw: dict[str, Any], name: str, required: bool) -> tuple[Any, bool]:
    """The element ``name`` or ``Not<name>`` (never both): (its value, negated)."""
    negated_name = "Not" + name
    if name in raw and negated_name in raw:
        raise malformed(f"statement: {name} and {negated_name} exclude each other")
    if negated_name in raw:
        return raw[negated_name], True
    if name not in raw and required:
        raise malformed(f"statement: {name} or {negated_name} is required")
    return raw.get(name), False


def _parse_statement(raw: Any, bucket: str | None, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise malformed("Statement")
    unknown = set(raw) - STATEMENT_ELEMENTS
    if unknown:
        raise malformed(f"statement element(s) {sorted(unknown)}")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise malformed("Effect: use Allow or Deny")
    raw_actions, not_action = _one_of(raw, "Action", required=True)
    raw_resources, not_resource = _one_of(raw, "Resource", required=True)
    raw_principal, not_principal = _one_of(raw, "Principal", required=False)
    actions = tuple(a.lower() for a in _strings(raw_actions, "Action"))
    for action in actions:
        if not (action == "*" or action.startswith("s3:")):
            raise malformed(f"Action {action!r}: only s3 actions apply")
    resources = _strings(raw_resources, "Resource")
    for resource in resources:
        _check_resource(resource, bucket, not_resource)
    principals = _parse_principal(raw_principal) if raw_principal is not None else None
    if bucket is not None and principals is None:
        raise malformed("statement: a bucket policy needs a Principal or NotPrincipal")
    if bucket is None and principals is not None:
        raise malformed("statement: a key's own policy must not name a Principal")
    return Statement(
        Decision(raw["Effect"]),
        principals,
        actions,
        resources,
        _parse_conditions(raw.get("Condition", {})),
        not_principal=not_principal,
        not_action=not_action,
        not_resource=not_resource,
        variables=variables,
    )


def _check_resource(resource: str, bucket: str | None, negated: bool) -> None:
    if resource == "*":
        return
    if not resource.startswith(ARN_PREFIX) or len(resource) == len(ARN_PREFIX):
        raise malformed(f"Resource {resource!r}: use arn:aws:s3:::bucket[/key]")
    if bucket is not None and not negated:
        named = resource[len(ARN_PREFIX) :].split("/", 1)[0]
        if not fnmatch.fnmatchcase(bucket, named):
            raise malformed(f"Resource {resource!r}: it must refer to bucket {bucket!r}")


def _parse_principal(raw: Any) -> frozenset[str]:
    """Key ids (plain or as IAM user ARNs) and canonical user ids, or ``*``."""
    if raw == "*":
        return frozenset({"*"})
    if not isinstance(raw, dict) or not raw or not set(raw) <= {"AWS", "CanonicalUser"}:
        raise malformed('Principal: use "*", {"AWS": [...]} or {"CanonicalUser": [...]}')
    principals = set()
    for item in _strings(raw["AWS"], "Principal") if "AWS" in raw else ():
        user = _IAM_USER.match(item)
        principals.add(user.group(1) if user else item)
    if "CanonicalUser" in raw:
        principals.update(_strings(raw["CanonicalUser"], "Principal"))
    return frozenset(principals)


def _parse_operator(name: str) -> tuple[str, bool, str | None]:
    """``ForAnyValue:StringLikeIfExists`` -> ("StringLike", True, "ForAnyValue")."""
    qualifier, colon, base = name.partition(":")
    if not colon:
        qualifier, base = "", name
    elif qualifier not in SET_QUALIFIERS:
        raise malformed(f"Condition operator {name!r}")
    if_exists = base.endswith(IF_EXISTS) and base != NULL_OPERATOR + IF_EXISTS
    if if_exists:
        base = base[: -len(IF_EXISTS)]
    if base not in CONDITION_OPERATORS or (qualifier and base == NULL_OPERATOR):
        raise malformed(f"Condition operator {name!r}")
    return base, if_exists, qualifier or None


def _parse_conditions(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise malformed("Condition")
    conditions = []
    for name, block in raw.items():
        operator, if_exists, qualifier = _parse_operator(name)
        if not isinstance(block, dict) or not block:
            raise malformed(f"Condition block for {name}")
        for key, values in block.items():
            items = values if isinstance(values, list) else [values]
            strings = _strings([_condition_text(v) for v in items], f"Condition values for {key}")
            _check_condition_values(operator, strings)
            conditions.append(Condition(operator, context_key(key), strings, if_exists, qualifier))
    return tuple(conditions)


def _condition_text(value: Any) -> Any:
    """JSON booleans and numbers as the strings AWS compares them as ("true", "10")."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_condition_values(operator: str, values: tuple[str, ...]) -> None:
    base = NEGATED_OPERATORS.get(operator, operator)
    try:
        for value in values:
            if base == "IpAddress":
                ipaddress.ip_network(value, strict=False)
            elif base.startswith("Date"):
                _parse_time(value)
            elif base.startswith("Numeric"):
                _parse_number(value)
            elif base == "BinaryEquals":
                base64.b64decode(value, validate=True)
            elif operator == NULL_OPERATOR and value.lower() not in ("true", "false"):
                raise ValueError("use true or false")
    except (ValueError, binascii.Error) as exc:
        raise malformed(f"Condition value for {operator}: {exc}") from exc


def _parse_time(value: str) -> datetime:
    """ISO 8601, or epoch seconds as IAM also accepts."""
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_number(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


# ---- evaluation ------------------------------------------------------------------------------


def evaluate(policy: Policy, request: PolicyRequest) -> Decision | None:
    """Deny if any matching statement denies; Allow if one allows; else None."""
    allowed = False
    context = {context_key(key): value for key, value in request.context.items()}
    for statement in policy.statements:
        if not _applies(statement, request, context):
            continue
        if statement.effect is Decision.DENY:
            return Decision.DENY
        allowed = True
    return Decision.ALLOW if allowed else None


def _applies(
    statement: Statement, request: PolicyRequest, context: Mapping[str, ContextValue]
) -> bool:
    if statement.principals is not None:
        named = _principal_matches(statement.principals, request.principal)
        if named is statement.not_principal:
            return False
    action = request.action.lower()
    named = any(fnmatch.fnmatchcase(action, pattern) for pattern in statement.actions)
    if named is statement.not_action:
        return False
    variables = context if statement.variables else None
    named = any(_like(request.resource, pattern, variables) for pattern in statement.resources)
    if named is statement.not_resource:
        return False
    return all(_condition_holds(c, context, variables) for c in statement.conditions)


def _principal_matches(principals: frozenset[str], principal: str | None) -> bool:
    if "*" in principals:
        return True
    return principal is not None and (principal in principals or owner_id(principal) in principals)


def _condition_holds(
    condition: Condition,
    context: Mapping[str, ContextValue],
    variables: Mapping[str, ContextValue] | None,
) -> bool:
    raw = context.get(condition.key)
    actual: tuple[str, ...] = () if raw is None else (raw,) if isinstance(raw, str) else raw
    if condition.operator == NULL_OPERATOR:
        absent = not actual
        return any((v.lower() == "true") is absent for v in condition.values)
    if not actual and condition.if_exists:
        return True
    if condition.qualifier == "ForAllValues":
        return all(_holds_for(condition, value, variables) for value in actual)
    if condition.qualifier == "ForAnyValue":
        return any(_holds_for(condition, value, variables) for value in actual)
    if not actual:
        return condition.operator in NEGATED_OPERATORS
    if condition.operator in NEGATED_OPERATORS:
        return all(_holds_for(condition, value, variables) for value in actual)
    return any(_holds_for(condition, value, variables) for value in actual)


def _holds_for(
    condition: Condition, actual: str, variables: Mapping[str, ContextValue] | None
) -> bool:
    """One request value against the condition's values (alternatives; negated: none)."""
    positive = NEGATED_OPERATORS.get(condition.operator)
    operator = positive or condition.operator
    matched = any(_value_matches(operator, actual, v, variables) for v in condition.values)
    return not matched if positive is not None else matched


# ---- wildcards and policy variables ----------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERAL_VARIABLES = frozenset({"*", "?", "$"})  # ${*} is a literal "*"


def _variable(text: str, context: Mapping[str, ContextValue]) -> str | None:
    """The value of ``${name}`` or ``${name, 'default'}``; None when it has none."""
    name, _, default = text.partition(",")
    name, default = name.strip(), default.strip()
    if name in _LITERAL_VARIABLES:
        return name
    value = context.get(context_key(name))
    if isinstance(value, str):
        return value
    if len(default) >= 2 and default[0] == default[-1] == "'":
        return default[1:-1]
    return None


def _glob(text: str) -> str:
    """The policy language's wildcards (only ``*`` and ``?``) as a regular expression."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> re.Pattern[str]:
    return re.compile(expression, re.DOTALL)


def _expand(text: str, variables: Mapping[str, ContextValue] | None, pattern: bool) -> str | None:
    """``text`` with its policy variables substituted (as literals), as a regular expression
    when ``pattern`` (wildcards) or as an escaped literal; None if a variable has no value."""
    quote = _glob if pattern else re.escape
    if variables is None or "${" not in text:
        return quote(text)
    parts, position = [], 0
    for match in _VARIABLE.finditer(text):
        value = _variable(match.group(1), variables)
        if value is None:
            return None  # AWS: an element whose variable has no value matches nothing
        parts += [quote(text[position : match.start()]), re.escape(value)]
        position = match.end()
    parts.append(quote(text[position:]))
    return "".join(parts)


def _like(actual: str, pattern: str, variables: Mapping[str, ContextValue] | None) -> bool:
    expression = _expand(pattern, variables, pattern=True)
    return expression is not None and _compiled(expression).fullmatch(actual) is not None


def _literal(
    actual: str, expected: str, variables: Mapping[str, ContextValue] | None, fold: bool = False
) -> bool:
    if variables is not None and "${" in expected:
        expression = _expand(expected, variables, pattern=False)
        if expression is None:
            return False
        flags = re.DOTALL | (re.IGNORECASE if fold else 0)
        return re.fullmatch(expression, actual, flags) is not None
    return actual.casefold() == expected.casefold() if fold else actual == expected


def _ip_in(actual: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _compare(parse: Callable[[str], Any], actual: str, expected: str, kind: str) -> bool:
    try:
        left, right = parse(actual), parse(expected)
    except (ValueError, OverflowError):
        return False  # a request value of the wrong type matches nothing
    return bool(
        {
            "Equals": left == right,
            "LessThan": left < right,
            "LessThanEquals": left <= right,
            "GreaterThan": left > right,
            "GreaterThanEquals": left >= right,
        }[kind]
    )


def _value_matches(
    operator: str, actual: str, expected: str, variables: Mapping[str, ContextValue] | None
) -> bool:
    """A positive operator applied to one request value and one policy value (String and
    Arn operators substitute policy variables in the policy value)."""
    if operator == "StringEquals":
        return _literal(actual, expected, variables)
    if operator == "StringEqualsIgnoreCase":
        return _literal(actual, expected, variables, fold=True)
    if operator in ("StringLike", "ArnLike", "ArnEquals"):  # IAM: ArnEquals takes wildcards too
        return _like(actual, expected, variables)
    if operator == "IpAddress":
        return _ip_in(actual, expected)
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator == "BinaryEquals":
        return actual == expected
    if operator.startswith("Numeric"):
        return _compare(_parse_number, actual, expected, operator[len("Numeric") :])
    return _compare(_parse_time, actual, expected, operator[len("Date") :])
