"""Conditional writes (If-None-Match: *, If-Match: etag), decided inside the commit.

A :class:`WriteCondition` travels with a write's mutation and is checked against the key's
latest version as the commit transaction sees it, so two concurrent create-only writes of one
key can never both commit. It also carries the key's state when the request started, which
lets a failed check tell "it had already failed then" (PreconditionFailed) from "another
write committed while this one was in flight" (ConditionalConflict).

Conditions see this site's state only: writes racing on two sites resolve by LWW as every
write does (docs/replication.md). A version written under a condition carries
:data:`CONDITIONAL_HEADER` so that replication can count the conflicts it loses.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from storage import catalog
from storage.errors import ConditionalConflict, NoSuchKey, PreconditionFailed
from storage.manifest import Kind, Manifest

# Internal manifest header (never shown to clients) on versions written under a condition.
CONDITIONAL_HEADER = "x-lakenode-conditional"
ANY_ETAG = "*"
_ABSENT = ""


@dataclass(frozen=True)
class WriteCondition:
    """``if_none_match_any``: the key must have no current object. ``if_match_etag``: its
    current object must have this ETag (unquoted; ``*``: any). ``observed``: the latest
    version's identity when the request started ("" none; None not observed)."""

    if_none_match_any: bool = False
    if_match_etag: str | None = None
    observed: str | None = None

    def observing(self, latest: Manifest | None) -> WriteCondition:
        """This condition with the key's state at the start of the request recorded."""
        return WriteCondition(self.if_none_match_any, self.if_match_etag, _identity(latest))

    def check(self, latest: Manifest | None) -> None:
        """Raise if the condition does not hold for ``latest`` (the key's latest version)."""
        current = latest if latest is not None and latest.kind == Kind.OBJECT else None
        if self.if_match_etag is not None and current is None:
            raise NoSuchKey(latest.key if latest is not None else "")
        failed = (self.if_none_match_any and current is not None) or (
            self.if_match_etag is not None
            and current is not None
            and self.if_match_etag not in (ANY_ETAG, current.etag)
        )
        if not failed:
            return
        if self.observed is not None and self.observed != _identity(latest):
            raise ConditionalConflict("a conflicting write to this key committed meanwhile")
        raise PreconditionFailed("the write condition does not hold")


def _identity(latest: Manifest | None) -> str:
    return _ABSENT if latest is None else f"{latest.hlc}:{latest.origin}:{latest.version_id}"


def enforce(
    conn: sqlite3.Connection, condition: WriteCondition | None, bucket: str, key: str
) -> None:
    """Check ``condition`` (if any) inside the commit transaction; raise to refuse."""
    if condition is not None:
        condition.check(catalog.get_latest(conn, bucket, key))


def written_conditionally(manifest: Manifest) -> bool:
    return any(name == CONDITIONAL_HEADER for name, _value in manifest.headers)


def mark(
    headers: tuple[tuple[str, str], ...], condition: WriteCondition | None
) -> tuple[tuple[str, str], ...]:
    """Headers for a version: without any inherited mark, plus one if written conditionally."""
    kept = tuple((name, value) for name, value in headers if name != CONDITIONAL_HEADER)
    return (*kept, (CONDITIONAL_HEADER, "1")) if condition is not None else kept
