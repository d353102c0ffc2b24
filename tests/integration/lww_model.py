"""The expected state of converged sites, computed independently from their change logs.

Stamps are not visible through S3, so the change logs are the authority for them: after a
workload, every site's whole log is read through ``GET /_lakenode/repl/changes`` (signed with
the root key, paged until ``more`` is false). Their union, deduplicated by ``(origin, hlc)``,
is every mutation any site made. From it, :func:`expected_state` computes by last-writer-wins
(``storage.lww.Stamp``) what every site must show, with no use of what the sites show:

* per (bucket, key, version id) the write with the greatest stamp stands: in unversioned
  buckets every write is to the ``null`` version (an object or a tombstone); in versioned ones
  each write is its own version (an object or a delete marker);
* a ``version.delete`` (a version removed for good) removes the version unless the version's
  stamp is greater than the delete's;
* per key, the remaining version with the greatest stamp is the latest; a key whose latest is
  a tombstone is absent (tombstones are never listed).

:func:`check_acknowledged` then checks that every operation a client got a 2xx for is in the
union (one missing from every log is a lost write), and :func:`compare` names every way a
site's state differs from the model: lost writes, lost deletes, resurrections, wrong winners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from replication.protocol import ChangesPage, page_from_json
from storage.lww import Stamp
from storage.manifest import Kind, decode
from storage.sync.feed import Change
from tests.integration.sites import BucketState, ObjectRow, SiteState, VersionRow

NULL_VERSION = "null"
PAGE_LIMIT = 1000
MAX_PAGES = 10_000  # bounds the paging loop: 10 million changes


# ---- reading the logs -------------------------------------------------------------------------


def fetch_log(get_page: Callable[[int], Any]) -> list[Change]:
    """Every change of one site's log; ``get_page(after)`` returns the decoded JSON page."""
    changes: list[Change] = []
    after = 0
    for _ in range(MAX_PAGES):
        page: ChangesPage = page_from_json(get_page(after))
        changes.extend(page.changes)
        if not page.more:
            return changes
        if page.last_seq <= after:
            raise AssertionError(f"change feed made no progress after seq {after}")
        after = page.last_seq
    raise AssertionError("change feed did not end")


def site_log(sites: Any, i: int) -> list[Change]:
    """Site ``i``'s whole change log (``sites`` is a tests.integration.sites.Sites)."""

    def get_page(after: int) -> Any:
        params = {"after": str(after), "limit": str(PAGE_LIMIT)}
        return sites.signed_get(i, "/_lakenode/repl/changes", params)

    return fetch_log(get_page)


@dataclass
class Union:
    """Every change of every log, by ``(origin, hlc)``, and where each was seen."""

    changes: dict[tuple[str, int], Change] = field(default_factory=dict)
    seen_at: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    inconsistent: list[str] = field(default_factory=list)

    def add(self, site: int, log: Iterable[Change]) -> None:
        for change in log:
            ident = (change.origin, change.hlc)
            known = self.changes.get(ident)
            if known is None:
                self.changes[ident] = change
            elif _essence(known) != _essence(change):
                self.inconsistent.append(
                    f"{change.origin}@{change.hlc}: {_essence(known)} vs {_essence(change)} "
                    f"(site-{site})"
                )
            self.seen_at.setdefault(ident, set()).add(site)

    def for_key(self, bucket: str, key: str) -> list[Change]:
        return sorted(
            (c for c in self.changes.values() if c.bucket == bucket and c.key == key),
            key=lambda c: (c.hlc, c.origin),
        )


def _essence(change: Change) -> tuple[object, ...]:
    """What must be identical wherever a change is relayed (seq and chunk locations are local)."""
    return (change.op, change.bucket, change.key, change.version_id, change.size, change.etag)


def read_union(sites: Any) -> Union:
    union = Union()
    for i in range(sites.count):
        union.add(i, site_log(sites, i))
    return union


# ---- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    stamp: Stamp
    kind: Kind
    etag: str
    size: int
    change: Change


@dataclass
class KeyModel:
    versions: dict[str, Version] = field(default_factory=dict)  # standing, incl. tombstones
    removed: dict[str, Stamp] = field(default_factory=dict)  # version.delete stamps

    def latest(self) -> Version | None:
        return max(self.versions.values(), key=lambda v: v.stamp, default=None)


def key_models(union: Union, buckets: Iterable[str]) -> dict[tuple[str, str], KeyModel]:
    wanted = set(buckets)
    models: dict[tuple[str, str], KeyModel] = {}
    written: dict[tuple[str, str, str], Version] = {}
    removed: dict[tuple[str, str, str], Stamp] = {}
    for change in union.changes.values():
        if change.bucket not in wanted or change.key is None or change.version_id is None:
            continue
        stamp = Stamp(change.hlc, change.origin)
        ident = (change.bucket, change.key, change.version_id)
        if change.op in ("object.put", "object.delete"):
            assert change.manifest is not None, f"{change.op} without manifest: {change}"
            kind = decode(change.manifest).kind
            version = Version(stamp, kind, (change.etag or "").strip('"'), change.size or 0, change)
            if ident not in written or stamp > written[ident].stamp:
                written[ident] = version
        elif change.op == "version.delete":
            removed[ident] = max(stamp, removed.get(ident, stamp))
    for ident in written.keys() | removed.keys():
        model = models.setdefault((ident[0], ident[1]), KeyModel())
        standing = written.get(ident)
        gone = removed.get(ident)
        if gone is not None:
            model.removed[ident[2]] = gone
        if standing is not None and (gone is None or standing.stamp > gone):
            model.versions[ident[2]] = standing
    return models


def expected_state(
    union: Union, versioning: dict[str, str]
) -> tuple[SiteState, dict[tuple[str, str], KeyModel]]:
    """What every converged site must show for the given buckets (name -> versioning)."""
    models = key_models(union, versioning)
    state: SiteState = {}
    for bucket, status in sorted(versioning.items()):
        versions: list[VersionRow] = []
        objects: list[ObjectRow] = []
        for (b, key), model in models.items():
            if b != bucket:
                continue
            latest = model.latest()
            for version_id, version in model.versions.items():
                if version.kind == Kind.TOMBSTONE:
                    continue
                is_latest = version is latest
                marker = version.kind == Kind.DELETE_MARKER
                versions.append(
                    (key, version_id, is_latest, "" if marker else version.etag,
                     0 if marker else version.size, marker)
                )  # fmt: skip
            if latest is not None and latest.kind == Kind.OBJECT:
                objects.append((key, latest.etag, latest.size))
        state[bucket] = BucketState(status, tuple(sorted(versions)), tuple(sorted(objects)))
    return state, models


# ---- acknowledged operations -------------------------------------------------------------------


@dataclass(frozen=True)
class AckedOp:
    """One operation a site answered with a 2xx."""

    site: int
    origin: str  # the site's node id
    op: str  # "put", "delete" (no version id) or "delete-version"
    bucket: str
    key: str
    versioned: bool
    etag: str = ""  # put: the ETag answered
    version_id: str | None = None  # put/delete in a versioned bucket: the id answered
    at: float = 0.0  # monotonic time of the answer

    def __str__(self) -> str:
        what = f"{self.op} {self.bucket}/{self.key}"
        if self.etag:
            what += f" etag {self.etag}"
        if self.version_id:
            what += f" version {self.version_id}"
        return f"site-{self.site}: {what}"


def find_change(union: Union, op: AckedOp, used: set[tuple[str, int]]) -> Change | None:
    """The logged change for an acknowledged operation (``used``: already matched ones)."""
    for change in union.for_key(op.bucket, op.key):
        ident = (change.origin, change.hlc)
        if change.origin != op.origin or ident in used:
            continue
        if op.op == "put":
            matches = change.op == "object.put" and (change.etag or "").strip('"') == op.etag
            if op.versioned:
                matches = matches and change.version_id == op.version_id
        elif op.op == "delete":
            matches = change.op == "object.delete"
            if op.versioned:
                matches = matches and change.version_id == op.version_id
        else:
            matches = change.op == "version.delete" and change.version_id == op.version_id
        if matches:
            used.add(ident)
            return change
    return None


def check_acknowledged(
    union: Union, acked: Iterable[AckedOp], models: dict[tuple[str, str], KeyModel]
) -> tuple[list[str], dict[AckedOp, Change]]:
    """Lost writes (acknowledged, in no log) and the change each acknowledged op became.

    A DELETE ?versionId answered 2xx need not be logged when the version was already gone
    (deleted for good elsewhere first), but its effect must hold: the version is not standing.
    """
    lost: list[str] = []
    found: dict[AckedOp, Change] = {}
    used: set[tuple[str, int]] = set()
    # Versioned ops name their change exactly; match them first, then the unversioned ones.
    for op in sorted(acked, key=lambda o: (o.version_id is None, o.at)):
        change = find_change(union, op, used)
        if change is not None:
            found[op] = change
            continue
        model = models.get((op.bucket, op.key), KeyModel())
        if op.op != "delete-version":
            lost.append(f"LOST WRITE: acknowledged but in no change log: {op}")
        elif op.version_id in model.versions:
            lost.append(
                f"LOST VERSION DELETE: acknowledged, in no change log, and the version still "
                f"stands: {op}; {describe_key(model)}"
            )
    return lost, found


def winning_deletes(
    found: dict[AckedOp, Change], models: dict[tuple[str, str], KeyModel]
) -> list[AckedOp]:
    """Acknowledged deletes whose stamp is the greatest for their key (must leave it absent)."""
    winners: list[AckedOp] = []
    for op, change in found.items():
        if op.op != "delete":
            continue
        latest = models.get((op.bucket, op.key), KeyModel()).latest()
        if latest is not None and latest.stamp == Stamp(change.hlc, change.origin):
            winners.append(op)
    return winners


# ---- comparing a site with the model ----------------------------------------------------------


def compare(
    site: int, shown: SiteState, expected: SiteState, models: dict[tuple[str, str], KeyModel]
) -> list[str]:
    """Every difference between what site ``site`` shows and the model, classified."""
    problems: list[str] = []
    for bucket, want in expected.items():
        have = shown.get(bucket)
        if have is None:
            problems.append(f"site-{site}: bucket {bucket} missing")
            continue
        if have.versioning != want.versioning:
            problems.append(
                f"site-{site}: {bucket} versioning {have.versioning!r}, want {want.versioning!r}"
            )
        problems.extend(_object_problems(site, bucket, have, want, models))
        problems.extend(_version_problems(site, bucket, have, want, models))
        problems.extend(_body_problems(site, bucket, have))
    return problems


def _object_problems(
    site: int,
    bucket: str,
    have: BucketState,
    want: BucketState,
    models: dict[tuple[str, str], KeyModel],
) -> list[str]:
    problems: list[str] = []
    shown = {key: (etag, size) for key, etag, size in have.objects}
    wanted = {key: (etag, size) for key, etag, size in want.objects}
    for key in sorted(shown.keys() | wanted.keys()):
        got, exp = shown.get(key), wanted.get(key)
        if got == exp:
            continue
        where = f"site-{site}: {bucket}/{key}"
        history = describe_key(models.get((bucket, key)))
        if exp is None:
            latest = models.get((bucket, key), KeyModel()).latest()
            if latest is not None and latest.kind != Kind.OBJECT:
                kind = "RESURRECTION (lost delete)"
            else:
                kind = "phantom object"
            problems.append(f"{where}: {kind}: shows {got}, model: absent; {history}")
        elif got is None:
            problems.append(f"{where}: LOST WRITE: absent, model: {exp}; {history}")
        else:
            problems.append(f"{where}: WRONG WINNER: shows {got}, model: {exp}; {history}")
    return problems


def _version_problems(
    site: int,
    bucket: str,
    have: BucketState,
    want: BucketState,
    models: dict[tuple[str, str], KeyModel],
) -> list[str]:
    problems: list[str] = []
    shown = {(row[0], row[1]): row for row in have.versions}
    wanted = {(row[0], row[1]): row for row in want.versions}
    for ident in sorted(shown.keys() | wanted.keys()):
        got, exp = shown.get(ident), wanted.get(ident)
        if got == exp:
            continue
        key, version_id = ident
        model = models.get((bucket, key), KeyModel())
        where = f"site-{site}: {bucket}/{key} version {version_id}"
        if exp is None and version_id in model.removed:
            kind = "RESURRECTED VERSION (deleted for good)"
        elif exp is None:
            kind = "unknown version"
        elif got is None:
            kind = "MISSING VERSION"
        else:
            kind = "version differs"
        problems.append(f"{where}: {kind}: shows {got}, model: {exp}; {describe_key(model)}")
    return problems


def _body_problems(site: int, bucket: str, have: BucketState) -> list[str]:
    """Bytes read back must hash to the listed ETag (every workload PUT is single-part)."""
    etags = {(row[0], row[1]): row[3] for row in have.versions if not row[5]}
    return [
        f"site-{site}: {bucket}/{key} version {version_id}: GET bytes have MD5 {md5}, "
        f"listed ETag {etags.get((key, version_id))}"
        for (key, version_id), md5 in have.bodies
        if etags.get((key, version_id)) != md5
    ]


def describe_key(model: KeyModel | None) -> str:
    if model is None:
        return "no changes logged for the key"
    parts = [
        f"{version_id}={version.kind.name.lower()} {version.etag or ''} @{version.stamp}"
        for version_id, version in sorted(model.versions.items(), key=lambda kv: kv[1].stamp)
    ]
    parts += [f"{version_id} removed @{stamp}" for version_id, stamp in model.removed.items()]
    return "standing: " + ", ".join(parts)


def describe_changes(changes: Iterable[Change], seen_at: dict[tuple[str, int], set[int]]) -> str:
    """Change-log rows of one key, for failure reports."""
    lines = []
    for change in changes:
        sites = ",".join(f"site-{i}" for i in sorted(seen_at.get((change.origin, change.hlc), ())))
        kind = decode(change.manifest).kind.name.lower() if change.manifest else "-"
        lines.append(
            f"    {Stamp(change.hlc, change.origin)} {change.op} {kind} "
            f"version={change.version_id} etag={change.etag} size={change.size} in logs of "
            f"{sites}"
        )
    return "\n".join(lines)
