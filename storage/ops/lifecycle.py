"""One lifecycle pass over a store: every bucket with rules, key by key, then stale uploads.

A pass is bounded and paced: at most ``max_actions`` actions and ``max_keys`` keys read (the
rest waits for the next pass), actions at no more than ``actions_per_s``, keys read a page at
a time on the store's reader connection. It is resumable: after every page of keys it records
where it is (``cursor`` in the ``lifecycle`` meta row, storage/ops/lifecycle_actions.py), and a
pass that finds a cursor (a crash, a stop, or the bound reached) continues from there; the
pass that reaches the end clears it. Re-reading a key is harmless: each action is decided
again inside its commit, so nothing is done twice.

Which site acts (docs/replication.md, "Lifecycle"): a version is expired by the site that wrote
it (its manifest's origin), so that with several sites an expiration happens once and the
others receive it by replication; a version whose origin is neither this node nor a known peer
is expired by the smallest node id among this node and its known peers. Uploads in progress are
not replicated: each site aborts its own.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field

from storage.errors import StorageError
from storage.lifecycle import (
    DAY_MS,
    ActionKind,
    BadLifecycle,
    Lifecycle,
    acting_node,
    loads,
    plan_key,
    upload_rule,
)
from storage.ops.lifecycle_actions import (
    AbortByRule,
    ExpireByRule,
    UpdateState,
    lifecycle_buckets,
    page_versions,
    read_state,
    stale_upload_rows,
)
from storage.store import Store
from storage.sync.retention import known_peers

log = logging.getLogger("lakenode.lifecycle")

KEYS_PER_PAGE = 100
MAX_ACTIONS = 10_000
MAX_KEYS = 1_000_000
ACTIONS_PER_S = 100.0


@dataclass(frozen=True)
class PassSettings:
    day_ms: int = DAY_MS
    max_actions: int = MAX_ACTIONS
    max_keys: int = MAX_KEYS  # keys read per pass: the rest waits for the next pass
    actions_per_s: float = ACTIONS_PER_S
    keys_per_page: int = KEYS_PER_PAGE


@dataclass
class PassReport:
    started_ms: int
    complete: bool = False
    actions: int = 0  # carried out
    skipped: int = 0  # planned, but no longer due (or locked) inside the commit
    errors: int = 0
    locked: int = 0  # not done: an object lock protects the version (counted, no commit)
    keys: int = 0
    resumed_from: tuple[str, str] | None = None
    buckets: list[str] = field(default_factory=list)


def peer_node_ids(conn: sqlite3.Connection) -> frozenset[str]:
    """Known peers by node id (a configured peer never reached is only a URL: not counted)."""
    return frozenset(peer for peer in known_peers(conn) if "://" not in peer)


class _Budget:
    """The pass's action bound and pace."""

    def __init__(self, settings: PassSettings) -> None:
        self.left = settings.max_actions
        self.gap_s = 1.0 / settings.actions_per_s if settings.actions_per_s > 0 else 0.0

    async def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        if self.gap_s:
            await asyncio.sleep(self.gap_s)
        return True


async def run_pass(store: Store, settings: PassSettings) -> PassReport:
    """One pass (resuming an unfinished one); records its progress and end in ``meta``."""
    state = await store.query(read_state)
    cursor = state.get("cursor")
    now_ms = store.time_source.wall_ms()
    resume: tuple[str, str] | None = None
    if isinstance(cursor, dict) and isinstance(cursor.get("bucket"), str):
        resume = (str(cursor["bucket"]), str(cursor.get("key", "")))
    started_ms = (
        int(cursor.get("started_ms", now_ms)) if resume and isinstance(cursor, dict) else now_ms
    )
    report = PassReport(started_ms, resumed_from=resume)
    await _record(store, report, cursor=_cursor(report, *(resume or ("", ""))))
    node_id = store.node_id
    peers = await store.query(peer_node_ids)
    budget = _Budget(settings)
    for bucket, document in await store.query(lifecycle_buckets):
        if resume is not None and bucket < resume[0]:
            continue
        rules = _rules(bucket, document, report)
        if rules is None or not rules.enabled:
            continue
        report.buckets.append(bucket)
        after = resume[1] if resume is not None and bucket == resume[0] else ""
        finished = await _walk_bucket(
            store, settings, report, budget, bucket, after, rules, node_id, peers
        )
        if not finished:
            return report
    for bucket, document in await store.query(lifecycle_buckets):
        rules = _rules(bucket, document, report)
        if rules is not None and rules.enabled:
            await _abort_uploads(store, settings, report, budget, bucket, rules)
    report.complete = True
    finished_ms = store.time_source.wall_ms()
    await store.commit(
        UpdateState(
            (
                ("cursor", None),
                ("last_pass_started_ms", report.started_ms),
                ("last_pass_finished_ms", finished_ms),
                ("last_pass_actions", report.actions),
            ),
            add_errors=report.errors,
            add_locked=report.locked,
        )
    )
    report.errors = report.locked = 0  # recorded
    return report


def _rules(bucket: str, document: str, report: PassReport) -> Lifecycle | None:
    try:
        return loads(document)
    except BadLifecycle as exc:
        log.warning("bucket %s: lifecycle configuration does not decode (%s); skipped", bucket, exc)
        report.errors += 1
        return None


def _cursor(report: PassReport, bucket: str, key: str) -> dict[str, object]:
    return {"bucket": bucket, "key": key, "started_ms": report.started_ms}


async def _record(store: Store, report: PassReport, cursor: dict[str, object]) -> None:
    """Save where the pass is (and the errors met so far) in one commit."""
    await store.commit(
        UpdateState((("cursor", cursor),), add_errors=report.errors, add_locked=report.locked)
    )
    report.errors = report.locked = 0


async def _walk_bucket(
    store: Store,
    settings: PassSettings,
    report: PassReport,
    budget: _Budget,
    bucket: str,
    after: str,
    rules: Lifecycle,
    node_id: str,
    peers: frozenset[str],
) -> bool:
    """Walk one bucket's keys from ``after``; False if the action bound stopped the pass."""
    now_ms = store.time_source.wall_ms()
    while True:
        page = await store.query(page_versions, bucket, after, settings.keys_per_page)
        if not page:
            return True
        if report.keys >= settings.max_keys:
            await _record(store, report, _cursor(report, bucket, after))
            return False
        for key, versions in page:
            locked_until = {v.version_id: v.protected_until_ms for v in versions}
            for action in plan_key(rules, key, versions, now_ms, settings.day_ms):
                if acting_node(action.origin, node_id, peers) != node_id:
                    continue
                removes = action.kind != ActionKind.EXPIRE_CURRENT
                if removes and locked_until.get(action.version_id, 0) > now_ms:
                    report.locked += 1  # the commit would refuse it too: skip it here
                    continue
                if not await budget.take():
                    await _record(store, report, _cursor(report, bucket, after))
                    return False
                await _act(store, report, ExpireByRule(bucket, key, action, rules, settings.day_ms))
            report.keys += 1
            after = key
        await _record(store, report, _cursor(report, bucket, after))


async def _act(store: Store, report: PassReport, mutation: ExpireByRule | AbortByRule) -> None:
    try:
        done = await store.commit(mutation)
    except StorageError as exc:
        # A version an object lock protects (ObjectLocked, decided in DeleteVersion's commit),
        # a bucket deleted meanwhile, a store refusing writes: counted, the pass goes on.
        log.info("lifecycle: %s on %s/%s not done: %s", type(mutation).__name__,
                 mutation.bucket, mutation.key, exc)  # fmt: skip
        report.errors += 1
        return
    if done:
        report.actions += 1
    else:
        report.skipped += 1


async def _abort_uploads(
    store: Store,
    settings: PassSettings,
    report: PassReport,
    budget: _Budget,
    bucket: str,
    rules: Lifecycle,
) -> None:
    """Abort the bucket's uploads a rule says are stale (every site its own: not replicated)."""
    now_ms = store.time_source.wall_ms()
    for key, upload_id, initiated_ms in await store.query(stale_upload_rows, bucket):
        if upload_rule(rules, key, initiated_ms, now_ms, settings.day_ms) is None:
            continue
        if not await budget.take():
            return
        await _act(store, report, AbortByRule(bucket, key, upload_id))
