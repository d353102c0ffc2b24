"""Pure lifecycle rules: the model of a bucket's lifecycle configuration and when it expires what.

The API validates a LifecycleConfiguration document and stores it as the JSON of
:class:`Lifecycle` (the ``lifecycle`` bucket document, which replicates like the others); the
lifecycle worker (storage/ops/lifecycle.py) and HEAD/GET (``x-amz-expiration``) read it back
with :func:`loads`. Everything here is arithmetic on facts passed in: no SQL, no clock, so the
rules are tested on their own and both sites evaluate them identically.

Days count as AWS counts them: the start time plus N days, rounded *up* to the next midnight
UTC. ``day_ms`` is a parameter so that tests can make a day last seconds
(``--lifecycle-day-seconds``); "midnight" is then the next multiple of that day.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

DAY_MS = 86_400_000
Tags = tuple[tuple[str, str], ...]


class FilterForm(Enum):
    """How a rule's filter was written, so GetBucketLifecycleConfiguration answers the same."""

    LEGACY_PREFIX = "legacy-prefix"  # <Prefix> directly in <Rule> (the old API)
    EMPTY = "empty"  # <Filter/>: every object
    PREFIX = "prefix"
    TAG = "tag"
    AND = "and"
    SIZE_GT = "size-gt"
    SIZE_LT = "size-lt"


@dataclass(frozen=True)
class Filter:
    """Which objects a rule applies to: all conditions must hold (AND)."""

    form: FilterForm = FilterForm.EMPTY
    prefix: str = ""
    tags: Tags = ()
    size_greater_than: int | None = None
    size_less_than: int | None = None

    def matches_key(self, key: str) -> bool:
        return key.startswith(self.prefix)

    def matches(self, key: str, size: int, tags: Tags) -> bool:
        """An object version: key prefix, every tag of the filter, and the size bounds."""
        if not key.startswith(self.prefix):
            return False
        if self.size_greater_than is not None and not size > self.size_greater_than:
            return False
        if self.size_less_than is not None and not size < self.size_less_than:
            return False
        have = dict(tags)
        return all(have.get(name) == value for name, value in self.tags)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    enabled: bool
    filter: Filter = field(default_factory=Filter)
    expiration_days: int | None = None
    expiration_date_ms: int | None = None  # midnight UTC
    expired_object_delete_marker: bool | None = None  # None: not written
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None  # AbortIncompleteMultipartUpload DaysAfterInitiation


@dataclass(frozen=True)
class Lifecycle:
    rules: tuple[Rule, ...]

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    def dumps(self) -> str:
        return json.dumps({"rules": [_rule_json(rule) for rule in self.rules]}, sort_keys=True)


class BadLifecycle(ValueError):
    """A stored lifecycle document that does not decode (written by a newer peer, or damaged)."""


def _rule_json(rule: Rule) -> dict[str, Any]:
    flt = rule.filter
    return {
        "id": rule.rule_id,
        "enabled": rule.enabled,
        "filter": {
            "form": flt.form.value,
            "prefix": flt.prefix,
            "tags": [list(tag) for tag in flt.tags],
            "gt": flt.size_greater_than,
            "lt": flt.size_less_than,
        },
        "expiration_days": rule.expiration_days,
        "expiration_date_ms": rule.expiration_date_ms,
        "expired_object_delete_marker": rule.expired_object_delete_marker,
        "noncurrent_days": rule.noncurrent_days,
        "newer_noncurrent_versions": rule.newer_noncurrent_versions,
        "abort_days": rule.abort_days,
    }


def loads(text: str) -> Lifecycle:
    """The stored JSON -> :class:`Lifecycle`; :class:`BadLifecycle` if it does not decode."""
    try:
        document = json.loads(text)
        return Lifecycle(tuple(_rule_from_json(item) for item in document["rules"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadLifecycle(f"lifecycle document does not decode: {exc}") from exc


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _rule_from_json(item: dict[str, Any]) -> Rule:
    flt = item["filter"]
    marker = item["expired_object_delete_marker"]
    if marker is not None and not isinstance(marker, bool):
        raise TypeError("expired_object_delete_marker must be a boolean")
    return Rule(
        rule_id=str(item["id"]),
        enabled=bool(item["enabled"]),
        filter=Filter(
            form=FilterForm(flt["form"]),
            prefix=str(flt["prefix"]),
            tags=tuple((str(name), str(value)) for name, value in flt["tags"]),
            size_greater_than=_optional_int(flt["gt"]),
            size_less_than=_optional_int(flt["lt"]),
        ),
        expiration_days=_optional_int(item["expiration_days"]),
        expiration_date_ms=_optional_int(item["expiration_date_ms"]),
        expired_object_delete_marker=marker,
        noncurrent_days=_optional_int(item["noncurrent_days"]),
        newer_noncurrent_versions=_optional_int(item["newer_noncurrent_versions"]),
        abort_days=_optional_int(item["abort_days"]),
    )


# ---- when things expire -------------------------------------------------------------------


def after_days(start_ms: int, days: int, day_ms: int = DAY_MS) -> int:
    """``start`` plus ``days`` days, rounded up to the next midnight (AWS's rule)."""
    end = start_ms + days * day_ms
    return -(-end // day_ms) * day_ms


@dataclass(frozen=True)
class Expiry:
    at_ms: int
    rule_id: str


def current_expiry(
    lifecycle: Lifecycle, key: str, size: int, tags: Tags, created_ms: int, day_ms: int = DAY_MS
) -> Expiry | None:
    """When the current object version (not a delete marker) expires, and by which rule: the
    earliest over the enabled rules that match it (``x-amz-expiration`` and the worker)."""
    best: Expiry | None = None
    for rule in lifecycle.enabled:
        if not rule.filter.matches(key, size, tags):
            continue
        for at_ms in _expiration_times(rule, created_ms, day_ms):
            if best is None or at_ms < best.at_ms:
                best = Expiry(at_ms, rule.rule_id)
    return best


def _expiration_times(rule: Rule, created_ms: int, day_ms: int) -> list[int]:
    times = []
    if rule.expiration_days is not None:
        times.append(after_days(created_ms, rule.expiration_days, day_ms))
    if rule.expiration_date_ms is not None:
        times.append(rule.expiration_date_ms)
    return times


def lone_marker_rule(
    lifecycle: Lifecycle, key: str, created_ms: int, now_ms: int, day_ms: int = DAY_MS
) -> str | None:
    """The rule that removes a delete marker that is the key's only version, if one does now.

    ``ExpiredObjectDeleteMarker`` removes it at once; an ``Expiration`` with ``Days`` removes
    it once the marker is that old (AWS does both). Tag and size filters never match a delete
    marker (it has neither), so such rules leave it alone.
    """
    for rule in lifecycle.enabled:
        flt = rule.filter
        if flt.tags or flt.size_greater_than is not None or flt.size_less_than is not None:
            continue
        if not flt.matches_key(key):
            continue
        if rule.expired_object_delete_marker:
            return rule.rule_id
        days = rule.expiration_days
        if days is not None and after_days(created_ms, days, day_ms) <= now_ms:
            return rule.rule_id
    return None


def noncurrent_rule(
    lifecycle: Lifecycle,
    key: str,
    size: int,
    tags: Tags,
    noncurrent_since_ms: int,
    newer_noncurrent: int,
    now_ms: int,
    day_ms: int = DAY_MS,
) -> str | None:
    """The rule that expires a noncurrent version now, if any.

    ``noncurrent_since_ms`` is when its successor was written; ``newer_noncurrent`` counts the
    noncurrent versions newer than it (``NewerNoncurrentVersions`` keeps that many).
    """
    for rule in lifecycle.enabled:
        if rule.noncurrent_days is None or not rule.filter.matches(key, size, tags):
            continue
        keep = rule.newer_noncurrent_versions
        if keep is not None and newer_noncurrent < keep:
            continue
        if after_days(noncurrent_since_ms, rule.noncurrent_days, day_ms) <= now_ms:
            return rule.rule_id
    return None


def upload_rule(
    lifecycle: Lifecycle, key: str, initiated_ms: int, now_ms: int, day_ms: int = DAY_MS
) -> str | None:
    """The rule that aborts an incomplete multipart upload now, if any (prefix filters only:
    AWS refuses AbortIncompleteMultipartUpload with tags or sizes)."""
    for rule in lifecycle.enabled:
        if rule.abort_days is None or not rule.filter.matches_key(key):
            continue
        if after_days(initiated_ms, rule.abort_days, day_ms) <= now_ms:
            return rule.rule_id
    return None


# ---- one key's plan -------------------------------------------------------------------------


class VersionKind(Enum):
    OBJECT = "object"
    DELETE_MARKER = "delete-marker"
    TOMBSTONE = "tombstone"  # an unversioned delete: invisible, never acted on


@dataclass(frozen=True)
class VersionFacts:
    """What the rules need of one version of a key."""

    version_id: str
    kind: VersionKind
    size: int
    last_modified_ms: int
    origin: str
    tags: Tags = ()
    protected_until_ms: int = 0  # object lock (storage/locks.py): no removal before this


class ActionKind(Enum):
    EXPIRE_CURRENT = "expire-current"  # DeleteObject: a delete marker, or a tombstone
    EXPIRE_NONCURRENT = "expire-noncurrent"  # DeleteVersion of a noncurrent version
    REMOVE_MARKER = "remove-marker"  # DeleteVersion of an expired object delete marker


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    version_id: str
    origin: str  # of the version decided on: which site acts (docs/replication.md)
    rule_id: str


def plan_key(
    lifecycle: Lifecycle,
    key: str,
    versions: Sequence[VersionFacts],
    now_ms: int,
    day_ms: int = DAY_MS,
) -> list[Action]:
    """What the rules do to one key now; ``versions`` newest first (the current one first)."""
    if not versions:
        return []
    actions: list[Action] = []
    current = versions[0]
    if current.kind == VersionKind.OBJECT:
        expiry = current_expiry(
            lifecycle, key, current.size, current.tags, current.last_modified_ms, day_ms
        )
        if expiry is not None and expiry.at_ms <= now_ms:
            actions.append(
                Action(
                    ActionKind.EXPIRE_CURRENT, current.version_id, current.origin, expiry.rule_id
                )
            )
    elif current.kind == VersionKind.DELETE_MARKER and len(versions) == 1:
        rule_id = lone_marker_rule(lifecycle, key, current.last_modified_ms, now_ms, day_ms)
        if rule_id is not None:
            actions.append(
                Action(ActionKind.REMOVE_MARKER, current.version_id, current.origin, rule_id)
            )
    for newer_noncurrent, (successor, version) in enumerate(itertools.pairwise(versions)):
        if version.kind == VersionKind.TOMBSTONE:
            continue
        rule_id = noncurrent_rule(
            lifecycle,
            key,
            version.size,
            version.tags,
            successor.last_modified_ms,
            newer_noncurrent,
            now_ms,
            day_ms,
        )
        if rule_id is not None:
            actions.append(
                Action(ActionKind.EXPIRE_NONCURRENT, version.version_id, version.origin, rule_id)
            )
    return actions


def acting_node(origin: str, node_id: str, peers: frozenset[str]) -> str:
    """Which site acts on a version (docs/replication.md, "Lifecycle"): the site that wrote it;
    for a version written elsewhere (a site neither this node nor a known peer), the smallest
    node id among this node and its known peers."""
    if origin == node_id or origin in peers:
        return origin
    return min(peers | {node_id})
