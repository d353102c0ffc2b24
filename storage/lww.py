"""The merge rule: last writer wins by (HLC, origin node id). Pure: no I/O.

Every stored fact a replica can disagree on (the latest state of a key, one version, a bucket,
one bucket document, one version's tags) carries the stamp of the change that wrote it:
``(hlc, origin)``. Stamps are totally ordered: first by the packed HLC, then by origin node id
(plain string order). A change is applied iff its stamp is greater than the stored one.

Laws (checked by tests/unit/storage/test_lww.py):

* commutative and associative: applying any set of changes in any order, with repeats, ends
  in the same state (the change with the greatest stamp);
* idempotent: applying a change twice is applying it once;
* deletes are changes like any other: a delete leaves a tombstone (or delete marker) carrying
  its stamp, so an older put arriving later loses to it and never resurrects the key.

Delete against put at an *equal* HLC: there is no equal stamp between two different changes,
because the origin node id breaks the tie (two changes from one node never share an HLC). So
the change from the node with the greater id wins, whether it is the put or the delete. This is
deliberate: "delete wins ties" would make the order depend on what a change is, and an
operator could not predict the outcome from the stamps alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.hlc import LOGICAL_BITS


@dataclass(frozen=True, order=True)
class Stamp:
    hlc: int
    origin: str

    def __str__(self) -> str:
        return f"{self.hlc >> LOGICAL_BITS}.{self.hlc & ((1 << LOGICAL_BITS) - 1)}@{self.origin}"


def wins(incoming: Stamp, stored: Stamp | None) -> bool:
    """True when ``incoming`` replaces ``stored`` (nothing stored: it always does)."""
    return stored is None or incoming > stored


def merge(stamps: list[Stamp]) -> Stamp | None:
    """The winner among stamps: the state after applying them all, in any order."""
    return max(stamps, default=None)
