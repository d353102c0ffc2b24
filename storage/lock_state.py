"""Object lock state of one version, and how two sites' states merge. Pure: no I/O.

A version's lock has two independent parts, as in S3: a *retention* (mode and retain-until
date) and a *legal hold* (on or off). Sites change them independently and exchange whole
states (a state-based CRDT); each part merges so that protection never decreases through
replication, except by a change that was allowed to decrease it:

* **COMPLIANCE retention** is grow-only: ``compliance_until_ms`` merges by ``max``. Nobody can
  shorten or remove it (the S3 layer refuses), so any date any site ever set binds everywhere.
* **GOVERNANCE retention** is a last-writer-wins register ``(stamp, until)`` (``until`` None:
  removed). Shortening or removing it needs ``x-amz-bypass-governance-retention``, and such an
  allowed change must win on every site, so the latest stamp wins (storage/lww.py's order).
  An extension is a later write, so it wins too.
* **Legal hold** is observed-remove: ``hold_set`` maps each origin to the greatest HLC at which
  it set the hold; ``hold_seen`` maps each origin to the greatest of its set-HLCs that some
  removal had seen. Both merge per origin by ``max``. The hold is on while some origin set it
  after every removal that saw its sets: a removal lifts only the holds it knew of, so a hold
  set on one site holds on both until it is removed after both know of it.

Laws (tests/unit/storage/test_lock_state.py): ``merge`` is commutative, associative and
idempotent (each part is a semilattice, and a product of semilattices is one); merging never
lifts a legal hold or shortens a COMPLIANCE date; ``may_delete`` of a merge is never true
where the COMPLIANCE part or an unseen hold of either side forbids it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from storage.lww import Stamp

Mode = Literal["GOVERNANCE", "COMPLIANCE"]
MODES: Final = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class Retention:
    """What GetObjectRetention shows."""

    mode: Mode
    until_ms: int


@dataclass(frozen=True)
class LockState:
    compliance_until_ms: int | None = None
    governance: tuple[Stamp, int | None] | None = None
    hold_set: Mapping[str, int] = field(default_factory=dict)
    hold_seen: Mapping[str, int] = field(default_factory=dict)

    # ---- what the state means ------------------------------------------------------------

    @property
    def legal_hold(self) -> bool:
        return any(hlc > self.hold_seen.get(origin, -1) for origin, hlc in self.hold_set.items())

    @property
    def governance_until_ms(self) -> int | None:
        return None if self.governance is None else self.governance[1]

    def retention(self) -> Retention | None:
        """The retention to show: COMPLIANCE when set and not outlasted by GOVERNANCE."""
        compliance, governance = self.compliance_until_ms, self.governance_until_ms
        if compliance is not None and (governance is None or compliance >= governance):
            return Retention("COMPLIANCE", compliance)
        if governance is not None:
            return Retention("GOVERNANCE", governance)
        return None

    def retained(self, at_ms: int, *, bypass_governance: bool = False) -> bool:
        """Does the retention forbid removing the version at ``at_ms``?"""
        if self.compliance_until_ms is not None and self.compliance_until_ms > at_ms:
            return True
        governance = self.governance_until_ms
        return governance is not None and governance > at_ms and not bypass_governance

    def may_delete(self, at_ms: int, *, bypass_governance: bool = False) -> bool:
        """May the version be removed for good at ``at_ms`` (wall-clock milliseconds)?"""
        return not self.legal_hold and not self.retained(at_ms, bypass_governance=bypass_governance)

    @property
    def empty(self) -> bool:
        return self == LockState()

    # ---- changes (each is merged into the stored state) ----------------------------------

    def with_compliance(self, until_ms: int) -> LockState:
        return merge(self, LockState(compliance_until_ms=until_ms))

    def with_governance(self, stamp: Stamp, until_ms: int | None) -> LockState:
        return merge(self, LockState(governance=(stamp, until_ms)))

    def with_hold(self, stamp: Stamp) -> LockState:
        return merge(self, LockState(hold_set={stamp.origin: stamp.hlc}))

    def without_hold(self) -> LockState:
        """Lift every hold this state knows of (and only those)."""
        return merge(self, LockState(hold_seen=dict(self.hold_set)))

    # ---- wire and disk form ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.compliance_until_ms is not None:
            document["compliance_until_ms"] = self.compliance_until_ms
        if self.governance is not None:
            stamp, until = self.governance
            document["governance"] = [stamp.hlc, stamp.origin, until]
        if self.hold_set:
            document["hold_set"] = dict(sorted(self.hold_set.items()))
        if self.hold_seen:
            document["hold_seen"] = dict(sorted(self.hold_seen.items()))
        return document

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


class BadLockState(ValueError):
    """A lock document that is not one (from a peer or a damaged row)."""


def from_json(document: Any) -> LockState:
    """Strictly parse :meth:`LockState.to_json`'s form."""
    if not isinstance(document, dict) or not set(document) <= {
        "compliance_until_ms",
        "governance",
        "hold_set",
        "hold_seen",
    }:
        raise BadLockState(f"not a lock state: {document!r}")
    compliance = document.get("compliance_until_ms")
    if compliance is not None and not _is_int(compliance):
        raise BadLockState("compliance_until_ms must be an integer")
    governance = None
    if "governance" in document:
        value = document["governance"]
        if not (
            isinstance(value, list)
            and len(value) == 3
            and _is_int(value[0])
            and isinstance(value[1], str)
            and (value[2] is None or _is_int(value[2]))
        ):
            raise BadLockState("governance must be [hlc, origin, until_ms|null]")
        governance = (Stamp(value[0], value[1]), value[2])
    return LockState(
        compliance_until_ms=compliance,
        governance=governance,
        hold_set=_origin_map(document.get("hold_set", {}), "hold_set"),
        hold_seen=_origin_map(document.get("hold_seen", {}), "hold_seen"),
    )


def loads(text: str) -> LockState:
    try:
        return from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise BadLockState(str(exc)) from None


def merge(a: LockState, b: LockState) -> LockState:
    """The state that holds everything either side knows (see the module docstring)."""
    return LockState(
        compliance_until_ms=_max_optional(a.compliance_until_ms, b.compliance_until_ms),
        governance=_later(a.governance, b.governance),
        hold_set=_max_per_origin(a.hold_set, b.hold_set),
        hold_seen=_max_per_origin(a.hold_seen, b.hold_seen),
    )


def _max_optional(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _later(
    a: tuple[Stamp, int | None] | None, b: tuple[Stamp, int | None] | None
) -> tuple[Stamp, int | None] | None:
    if a is None:
        return b
    if b is None:
        return a
    # One stamp is one change, so equal stamps carry equal values; ordering on the value too
    # keeps merge a total function (commutative even for states no site could produce).
    return a if _register_key(a) >= _register_key(b) else b


def _register_key(register: tuple[Stamp, int | None]) -> tuple[Stamp, int]:
    stamp, until = register
    return stamp, -1 if until is None else until


def _max_per_origin(a: Mapping[str, int], b: Mapping[str, int]) -> Mapping[str, int]:
    if not b:
        return a
    if not a:
        return b
    merged = dict(a)
    for origin, hlc in b.items():
        merged[origin] = max(hlc, merged.get(origin, hlc))
    return merged


def _origin_map(value: Any, name: str) -> Mapping[str, int]:
    if not isinstance(value, dict) or not all(
        isinstance(origin, str) and _is_int(hlc) for origin, hlc in value.items()
    ):
        raise BadLockState(f"{name} must map origin ids to integers")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
