"""Pure lifecycle rules (storage/lifecycle.py): AWS's day arithmetic, which rule expires which
version when, one key's plan, which site acts, and the stored JSON."""

from __future__ import annotations

import pytest

from storage.lifecycle import (
    DAY_MS,
    Action,
    ActionKind,
    BadLifecycle,
    Filter,
    FilterForm,
    Lifecycle,
    Rule,
    VersionFacts,
    VersionKind,
    acting_node,
    after_days,
    current_expiry,
    loads,
    plan_key,
    upload_rule,
)

MIDNIGHT = 1_800_000_000_000 // DAY_MS * DAY_MS  # some midnight UTC
OBJ, MARKER = VersionKind.OBJECT, VersionKind.DELETE_MARKER


def rule(rule_id: str = "r", prefix: str = "", **actions: object) -> Rule:
    return Rule(rule_id, True, Filter(FilterForm.PREFIX, prefix=prefix), **actions)  # type: ignore[arg-type]


def version(
    vid: str, at_ms: int, kind: VersionKind = OBJ, size: int = 10, origin: str = "a"
) -> VersionFacts:
    return VersionFacts(vid, kind, size, at_ms, origin)


def test_days_round_up_to_the_next_midnight() -> None:
    assert after_days(MIDNIGHT + 10 * 3_600_000, 3) == MIDNIGHT + 4 * DAY_MS
    assert after_days(MIDNIGHT, 1) == MIDNIGHT + DAY_MS  # already midnight: stays
    assert after_days(MIDNIGHT + 1, 1) == MIDNIGHT + 2 * DAY_MS
    # A test "day" of 2 seconds: midnight is the next multiple of 2 s.
    assert after_days(1_001, 1, 2_000) == 4_000


def test_current_expiry_is_the_earliest_matching_rule() -> None:
    rules = Lifecycle(
        (
            rule("late", expiration_days=30),
            rule("logs", "logs/", expiration_days=7),
            rule("dated", "logs/", expiration_date_ms=MIDNIGHT + 100 * DAY_MS),
            Rule("off", False, Filter(), expiration_days=1),
        )
    )
    expiry = current_expiry(rules, "logs/x", 1, (), MIDNIGHT)
    assert expiry is not None and (expiry.rule_id, expiry.at_ms) == ("logs", MIDNIGHT + 7 * DAY_MS)
    other = current_expiry(rules, "data/x", 1, (), MIDNIGHT)
    assert other is not None and other.rule_id == "late"


def test_filters_tags_and_sizes() -> None:
    flt = Filter(FilterForm.AND, "p/", (("k", "v"), ("x", "y")), 10, 100)
    assert flt.matches("p/a", 50, (("k", "v"), ("x", "y"), ("z", "1")))
    assert not flt.matches("p/a", 50, (("k", "v"),))  # every tag must be there
    assert not flt.matches("p/a", 10, (("k", "v"), ("x", "y")))  # strictly greater
    assert not flt.matches("p/a", 100, (("k", "v"), ("x", "y")))  # strictly less
    assert not flt.matches("q/a", 50, (("k", "v"), ("x", "y")))


def test_plan_expires_current_only_when_due() -> None:
    rules = Lifecycle((rule(expiration_days=1),))
    versions = [version("v1", MIDNIGHT + 5)]
    assert plan_key(rules, "k", versions, MIDNIGHT + 2 * DAY_MS - 1) == []
    assert plan_key(rules, "k", versions, MIDNIGHT + 2 * DAY_MS) == [
        Action(ActionKind.EXPIRE_CURRENT, "v1", "a", "r")
    ]
    # A rule for another prefix does nothing.
    assert plan_key(Lifecycle((rule(prefix="x/", expiration_days=1),)), "k", versions, 10**15) == []


def test_noncurrent_days_count_from_the_successor_and_newer_versions_are_kept() -> None:
    rules = Lifecycle((rule(noncurrent_days=1, newer_noncurrent_versions=1),))
    versions = [
        version("v4", MIDNIGHT + 4 * DAY_MS),  # current
        version("v3", MIDNIGHT + 3 * DAY_MS),  # noncurrent since v4: kept (1 newer kept)
        version("v2", MIDNIGHT + 2 * DAY_MS),  # noncurrent since v3
        version("v1", MIDNIGHT + 1 * DAY_MS),  # noncurrent since v2
    ]
    now = MIDNIGHT + 4 * DAY_MS
    planned = plan_key(rules, "k", versions, now)
    assert [(a.kind, a.version_id) for a in planned] == [
        (ActionKind.EXPIRE_NONCURRENT, "v2"),
        (ActionKind.EXPIRE_NONCURRENT, "v1"),
    ]
    # v2 has been noncurrent since v3 (day 3): due at day 4, not before.
    assert [a.version_id for a in plan_key(rules, "k", versions, now - 1)] == ["v1"]


def test_expired_delete_marker_only_when_it_is_the_only_version() -> None:
    flag = Lifecycle((rule(expired_object_delete_marker=True),))
    alone = [version("m", MIDNIGHT, MARKER)]
    assert plan_key(flag, "k", alone, MIDNIGHT) == [Action(ActionKind.REMOVE_MARKER, "m", "a", "r")]
    with_older = [version("m", MIDNIGHT, MARKER), version("v", MIDNIGHT - 1)]
    assert plan_key(flag, "k", with_older, MIDNIGHT + 10 * DAY_MS) == []
    # Expiration Days also removes a lone marker once it is that old (AWS).
    days = Lifecycle((rule(expiration_days=2),))
    assert plan_key(days, "k", alone, MIDNIGHT + DAY_MS) == []
    assert [a.kind for a in plan_key(days, "k", alone, MIDNIGHT + 2 * DAY_MS)] == [
        ActionKind.REMOVE_MARKER
    ]
    # A tag filter never matches a delete marker.
    tagged = Lifecycle(
        (Rule("t", True, Filter(FilterForm.TAG, tags=(("a", "b"),)), expiration_days=1),)
    )
    assert plan_key(tagged, "k", alone, MIDNIGHT + 9 * DAY_MS) == []


def test_tombstones_are_never_acted_on() -> None:
    rules = Lifecycle((rule(expiration_days=1, noncurrent_days=1),))
    assert plan_key(rules, "k", [version("t", 0, VersionKind.TOMBSTONE)], 10**15) == []


def test_uploads_are_aborted_by_prefix_after_days() -> None:
    rules = Lifecycle((rule("mpu", "tmp/", abort_days=1),))
    assert upload_rule(rules, "tmp/x", MIDNIGHT + 1, MIDNIGHT + 2 * DAY_MS) == "mpu"
    assert upload_rule(rules, "tmp/x", MIDNIGHT + 1, MIDNIGHT + 2 * DAY_MS - 1) is None
    assert upload_rule(rules, "keep/x", 0, 10**15) is None


def test_the_writing_site_acts_else_the_smallest_known_node() -> None:
    peers = frozenset({"node-b", "node-c"})
    assert acting_node("node-a", "node-a", peers) == "node-a"
    assert acting_node("node-c", "node-a", peers) == "node-c"
    assert acting_node("node-z", "node-b", frozenset({"node-a"})) == "node-a"
    # Every site computes the same actor from the same facts.
    everyone = {"node-a", "node-b", "node-c"}
    for origin in ("node-a", "node-c", "gone"):
        actors = {acting_node(origin, me, frozenset(everyone - {me})) for me in everyone}
        assert len(actors) == 1


def test_json_round_trip_and_bad_documents() -> None:
    rules = Lifecycle(
        (
            Rule(
                "x",
                True,
                Filter(FilterForm.AND, "p/", (("k", "v"),), 1, 9),
                expiration_date_ms=MIDNIGHT,
                noncurrent_days=3,
                newer_noncurrent_versions=2,
            ),
            Rule("y", False, Filter(FilterForm.LEGACY_PREFIX, prefix="a"), abort_days=1),
            Rule("z", True, expired_object_delete_marker=False),
        )
    )
    assert loads(rules.dumps()) == rules
    for bad in ("", "[]", '{"rules": [{"id": "x"}]}', '{"rules": 3}'):
        with pytest.raises(BadLifecycle):
            loads(bad)
