"""``lakenode repl pull|push|validate|status|bootstrap``: replication jobs from the command line.

``pull`` brings a stopped node's data dir up to date with peers, once: for catching a node up
before starting it, with the same code as a running node's pull tasks. A running node holds
its data dir's lock, so ``pull`` refuses a data dir in use instead of opening the store twice.

``validate`` compares this site with a peer through their Merkle digests and prints every
(bucket, key) that differs. On a stopped data dir it reads the store; beside a running node
it asks that node (whose address the node records in DATA/serve.json).

``bootstrap --from URL`` fills a new, stopped site with a peer's full state and then catches
up with its log (node/cli/repl_bootstrap.py, replication/bootstrap.py); it resumes after a crash.

``push`` sends a stopped node's changes to peers until they hold them all (the mirror of
``pull``). ``status`` prints each peer's replication state (node/metrics/replication.py): beside a
running node it asks that node, on a stopped data dir it reads it and probes the ``--peer``s;
``validate`` records each outcome in the data dir for it. ``status`` exits 1 only when the
node or a peer cannot be reached.

Exit status: 0 when caught up / the sites agree, 1 when a pull failed / they differ or a side
is unreachable, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from node.cli.keys import open_catalog
from node.cli.repl_bootstrap import bootstrap_site
from node.cli.repl_gc import GC_ACTIONS, add_gc_arguments, run_gc_action
from node.config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_REGION,
    DEFAULT_SECRET_KEY,
    add_data_dir_argument,
    add_peer_argument,
    check_peer_credentials,
    parse_duration_ms,
    parse_file,
    parse_key,
    parse_peer_url,
    parse_region,
    resolve_peers,
)
from node.metrics.replication import full_reports
from node.peers import PEER_TIMEOUT_S, peer_signer
from node.tls import TlsFileError, peer_verify, pinned_context
from replication.bootstrap import DEFAULT_PAGE_SIZE
from replication.client import PeerClient, PeerUnavailable, RemoteDigests, Signer
from replication.protocol import MAX_PAGE_CHANGES, ProtocolError
from replication.puller import PeerState, PullStats, identify_peer, pull_once
from replication.pusher import PushFailed, push_once
from replication.validate import (
    Difference,
    DigestSource,
    WalkStats,
    compare,
    compare_deep,
    describe,
    explain,
)
from storage.errors import StorageError
from storage.hlc import wall_clock_ms
from storage.store import DataDirLocked, Store, StoreConfig
from storage.sync.peer_stats import PeerCounters, ValidateRecord, record_validate
from storage.sync.site import SyncSite

T = TypeVar("T")
SERVE_RECORD = "serve.json"  # written by a running node: where it listens (and its cert)
PEER_CA_ENV = "LAKENODE_PEER_CA"
Verify = ssl.SSLContext | bool  # how https peers are verified (node/tls.py)


def add_repl_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    pull = actions.add_parser("pull", help="pull changes from peers until caught up, then exit")
    add_peer_argument(pull, "peer to pull from (repeatable)")
    _add_common(pull)
    validate = actions.add_parser("validate", help="compare this site with peers; 0 if equal")
    add_peer_argument(validate, "peer to compare with (repeatable)")
    validate.add_argument(
        "--deep",
        action="store_true",
        help="also compare every version's chunk BLAKE3 list (reads every key on both sides)",
    )
    _add_common(validate)
    push = actions.add_parser("push", help="push this stopped node's changes to peers, then exit")
    add_peer_argument(push, "peer to push to (repeatable)")
    _add_common(push)
    status = actions.add_parser("status", help="replication state per peer; 'in sync' or not")
    add_peer_argument(status, "peer to report on (default: the running node's peers)")
    status.add_argument("--json", action="store_true", help="print JSON for scripts")
    _add_common(status)
    _add_bootstrap(actions)
    add_gc_arguments(actions)


def _add_bootstrap(actions: Any) -> None:
    boot = actions.add_parser(
        "bootstrap", help="fill an empty site with a peer's full state, then catch up"
    )
    boot.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="the peer to copy"
    )
    boot.add_argument(
        "--node-id", help="node id of the new site (default: the data dir's, else a new one)"
    )
    boot.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE_SIZE,
        help=f"changes per snapshot page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_CHANGES})",
    )
    _add_common(boot)


def _bootstrap_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if not 1 <= args.page_size <= MAX_PAGE_CHANGES:
        parser.error(f"argument --page-size: must be from 1 to {MAX_PAGE_CHANGES}")
    try:
        return parse_peer_url(args.source)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument --from: {exc}")


def _add_common(pull: argparse.ArgumentParser) -> None:
    add_data_dir_argument(pull, "data directory of a stopped node")
    add_peer_credentials(pull)
    pull.add_argument(
        "--repl-max-clock-skew",
        help="refuse changes stamped further ahead of our clock (default 1s) "
        "[env LAKENODE_REPL_MAX_CLOCK_SKEW]",
    )


def add_peer_credentials(parser: argparse.ArgumentParser) -> None:
    """--peer-access-key, --peer-secret-key, --region, --peer-ca: how to call peers."""
    parser.add_argument(
        "--peer-access-key",
        help="access key for the peers [env LAKENODE_PEER_ACCESS_KEY, else LAKENODE_ACCESS_KEY]",
    )
    parser.add_argument(
        "--peer-secret-key",
        help="secret key for the peers [env LAKENODE_PEER_SECRET_KEY, else LAKENODE_SECRET_KEY]",
    )
    parser.add_argument("--region", help="SigV4 region of the peers [env LAKENODE_REGION]")
    parser.add_argument(
        "--peer-ca",
        metavar="FILE",
        help=f"PEM CA certificates to verify https peers with (default: the system store) "
        f"[env {PEER_CA_ENV}]",
    )


@dataclass(frozen=True)
class PeerCredentials:
    access_key: str
    secret_key: str
    region: str
    peer_ca: Path | None = None  # None: the system store

    def signer(self) -> Signer:
        return peer_signer(self.access_key, self.secret_key, self.region)

    def verify(self) -> Verify:
        return peer_verify(self.peer_ca)


def resolve_peer_credentials(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> PeerCredentials:
    """Flags, else environment (the peer pair, else the root pair), else the defaults; the
    CA file is checked now (exit 2)."""
    check_peer_credentials(parser, args.peer_access_key, args.peer_secret_key)
    access_key = _setting(
        parser,
        args.peer_access_key,
        "--peer-access-key",
        parse_key,
        ("LAKENODE_PEER_ACCESS_KEY", "LAKENODE_ACCESS_KEY"),
        DEFAULT_ACCESS_KEY,
    )
    secret_key = _setting(
        parser,
        args.peer_secret_key,
        "--peer-secret-key",
        parse_key,
        ("LAKENODE_PEER_SECRET_KEY", "LAKENODE_SECRET_KEY"),
        DEFAULT_SECRET_KEY,
    )
    region = _setting(parser, args.region, "--region", parse_region,
                      ("LAKENODE_REGION",), DEFAULT_REGION)  # fmt: skip
    credentials = PeerCredentials(access_key, secret_key, region, _peer_ca(parser, args.peer_ca))
    try:
        credentials.verify()
    except TlsFileError as exc:
        parser.error(f"argument --peer-ca: {exc}")
    return credentials


def run_repl(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.action in GC_ACTIONS:
        return run_gc_action(parser, args)
    if args.action == "bootstrap":
        source = _bootstrap_source(parser, args)
        peers: tuple[str, ...] = ()
    else:
        peers = resolve_peers(parser, args.peer)
        if not peers and args.action != "status":  # status asks a running node for its peers
            parser.error("argument --peer: at least one peer is required")
        if not (args.data_dir / "node_id").exists():
            parser.error(f"argument --data-dir: no lakenode data in {args.data_dir}")
    credentials = resolve_peer_credentials(parser, args)
    skew_ms = _setting(
        parser,
        args.repl_max_clock_skew,
        "--repl-max-clock-skew",
        parse_duration_ms,
        ("LAKENODE_REPL_MAX_CLOCK_SKEW",),
        "1s",
    )
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sign = credentials.signer()
    verify = credentials.verify()
    if args.action == "push":
        return asyncio.run(push_all(args.data_dir, peers, sign, verify))
    if args.action == "status":
        return asyncio.run(status_all(args.data_dir, peers, sign, verify, as_json=args.json))
    if args.action == "bootstrap":
        return asyncio.run(
            bootstrap_site(
                args.data_dir, source, sign, skew_ms, args.node_id, args.page_size, verify
            )
        )
    if args.action == "validate":
        return asyncio.run(validate_all(args.data_dir, peers, sign, verify, deep=args.deep))
    return asyncio.run(pull_all(args.data_dir, peers, sign, skew_ms, verify))


def _peer_ca(parser: argparse.ArgumentParser, given: str | None) -> Path | None:
    """--peer-ca, else LAKENODE_PEER_CA, else None (the system store)."""
    raw, source = given, "--peer-ca"
    if raw is None and PEER_CA_ENV in os.environ:
        raw, source = os.environ[PEER_CA_ENV], f"--peer-ca (from {PEER_CA_ENV})"
    if raw is None:
        return None
    try:
        return parse_file(raw)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument {source}: {exc}")


def _setting(
    parser: argparse.ArgumentParser,
    given: str | None,
    flag: str,
    parse: Callable[[str], T],
    envs: tuple[str, ...],
    default: str,
) -> T:
    """Flag, else the first environment variable set, else the default; parsed."""
    raw, source = given, flag
    for env in envs:
        if raw is None and env in os.environ:
            raw, source = os.environ[env], f"{flag} (from {env})"
    try:
        return parse(default if raw is None else raw)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(f"argument {source}: {exc}")


async def pull_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, skew_ms: int, verify: Verify = True
) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked as exc:
        _fail(f"{exc}: stop that node first (a running node pulls from its --peer itself)")
        return 1
    try:
        site = await SyncSite.open(store)
        for url in peers:
            if not await pull_peer(site, url, sign, skew_ms, verify):
                return 1
        return 0
    finally:
        await store.close()


async def pull_peer(
    site: SyncSite, url: str, sign: Signer, skew_ms: int, verify: Verify = True
) -> bool:
    """Pull one peer until caught up; print one line saying what happened."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as client:
        state = PeerState(url=client.base_url)
        try:
            name = await identify_peer(site, client, state)
            stats = await pull_once(site, client, name, skew_ms, state=state)
        except (PeerUnavailable, ProtocolError, StorageError) as exc:
            _fail(f"{client.base_url}: {type(exc).__name__}: {exc}")
            return False
        finally:
            await _add_counters(site, state, client)
    print(f"pulled {client.base_url} (node {name}) into {site.node_id}: {_summary(stats)}")
    return True


def _summary(stats: PullStats) -> str:
    return f"caught up; {stats.summary()}"


def _fail(message: str, action: str = "pull") -> None:
    sys.stderr.write(f"lakenode repl {action}: {message}\n")


# ---- validate ----------------------------------------------------------------------------------


async def validate_all(
    data_dir: Path,
    peers: tuple[str, ...],
    sign: Signer,
    verify: Verify = True,
    *,
    deep: bool = False,
) -> int:
    """Compare the local site with each peer; print the differences; 0 only if all agree."""
    status = 0
    for url in peers:
        try:
            differences, stats, peer_id = await _validate_one(data_dir, url, sign, verify, deep)
        except (PeerUnavailable, ProtocolError, StorageError, OSError) as exc:
            _fail(f"{url}: {type(exc).__name__}: {exc}", "validate")
            status = 1
            continue
        _record_validate(data_dir, peer_id, url, len(differences))
        for difference in differences:
            print(
                f"{difference.bucket}\t{difference.key}\t"
                f"here={describe(difference.local_facts)}\t"
                f"peer={describe(difference.remote_facts)}"
            )
        verdict = "agree" if not differences else f"{len(differences)} difference(s)"
        cost = (
            f"{stats.keys_compared_deep} keys compared with their chunk lists"
            if deep
            else f"{stats.nodes_compared} nodes, {stats.leaf_ranges_compared} leaf ranges compared"
        )
        purged = (
            f", {stats.purged_tombstones} purged tombstone(s) ignored"
            if stats.purged_tombstones
            else ""
        )
        print(f"validate {url}: {verdict} ({cost}{purged})")
        status = status or (1 if differences else 0)
    return status


async def _validate_one(
    data_dir: Path, url: str, sign: Signer, verify: Verify, deep: bool
) -> tuple[list[Difference], WalkStats, str]:
    """The differences, the walk's cost, and the peer's node id (the key of the record)."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as peer:
        peer_id = (await peer.info()).node_id
        try:
            store = await Store.open(StoreConfig(data_dir))
        except DataDirLocked:
            async with running_node_client(data_dir, sign) as local:
                return (*await _compare(RemoteDigests(local), RemoteDigests(peer), deep), peer_id)
        try:
            site = await SyncSite.open(store)
            return (*await _compare(site, RemoteDigests(peer), deep), peer_id)
        finally:
            await store.close()


async def _compare(
    local: DigestSource, remote: DigestSource, deep: bool
) -> tuple[list[Difference], WalkStats]:
    if deep:
        return await compare_deep(local, remote)
    differences, stats = await compare(local, remote)
    return await explain(differences, local, remote, stats), stats


def _record_validate(data_dir: Path, peer_id: str, url: str, differences: int) -> None:
    """Keep the outcome for `repl status` and metrics (works beside a running node: SQLite)."""
    record = ValidateRecord(time_ms=wall_clock_ms(), differences=differences, url=url)
    try:
        conn = open_catalog(data_dir)
        try:
            record_validate(conn, peer_id, record)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        _fail(f"could not record the outcome in {data_dir}: {exc}", "validate")


def running_node_client(data_dir: Path, sign: Signer) -> PeerClient:
    """A client for the node running on ``data_dir``, at the address it recorded; over https
    it trusts exactly the certificate the node recorded (node/tls.py)."""
    record = data_dir / SERVE_RECORD
    try:
        document = json.loads(record.read_text())
        url, cert = str(document["url"]), document.get("cert")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{data_dir} is in use but {record} does not say where") from exc
    try:
        verify = True if cert is None else pinned_context(Path(str(cert)))
    except TlsFileError as exc:
        raise StorageError(f"the running node's {exc}") from exc
    return PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify)


async def _add_counters(site: SyncSite, state: PeerState, client: PeerClient) -> None:
    """What a one-shot job moved, into the peer's counters on disk (metrics, status)."""
    if state.node_id is not None:
        delta = PeerCounters(bytes_sent=client.bytes_sent, bytes_received=client.bytes_received)
        await site.add_repl_counters(state.node_id, delta)


# ---- push --------------------------------------------------------------------------------------


async def push_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, verify: Verify = True
) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked as exc:
        _fail(f"{exc}: stop that node first (push runs on a stopped data dir)", "push")
        return 1
    try:
        site = await SyncSite.open(store)
        for url in peers:
            if not await push_peer(site, url, sign, verify):
                return 1
        return 0
    finally:
        await store.close()


async def push_peer(site: SyncSite, url: str, sign: Signer, verify: Verify = True) -> bool:
    """Push to one peer until it holds our log; print one line saying what happened."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify) as client:
        state = PeerState(url=client.base_url)
        try:
            name = await identify_peer(site, client, state)
            stats = await push_once(site, client, name)
        except (PeerUnavailable, ProtocolError, StorageError, PushFailed) as exc:
            _fail(f"{client.base_url}: {type(exc).__name__}: {exc}", "push")
            return False
        finally:
            await _add_counters(site, state, client)
    print(f"pushed {site.node_id} to {client.base_url} (node {name}): caught up; {stats.summary()}")
    return True


# ---- status ------------------------------------------------------------------------------------


async def status_all(
    data_dir: Path, peers: tuple[str, ...], sign: Signer, verify: Verify = True, *, as_json: bool
) -> int:
    """Print each peer's state; 1 if the node or a peer cannot be reached, else 0."""
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked:
        try:
            document = await _running_node_status(data_dir, sign)
        except (PeerUnavailable, ProtocolError, StorageError) as exc:
            _fail(f"the running node: {type(exc).__name__}: {exc}", "status")
            return 1
        if peers:
            document["peers"] = [row for row in document["peers"] if row.get("url") in peers]
    else:
        try:
            if not peers:
                _fail("no node is running on this data dir: name peers with --peer", "status")
                return 1
            states = [PeerState(url=url) for url in peers]
            site = await SyncSite.open(store)
            reports = await full_reports(site, states, sign, verify)
            document = {"node_id": site.node_id, "peers": [r.to_json() for r in reports]}
        finally:
            await store.close()
    print(json.dumps(document, indent=2, sort_keys=True) if as_json else format_status(document))
    configured = [row for row in document["peers"] if row.get("url") is not None]
    return 0 if all(row.get("link_up") is True for row in configured) else 1


async def _running_node_status(data_dir: Path, sign: Signer) -> dict[str, Any]:
    async with running_node_client(data_dir, sign) as node:
        document = await node.node_status()
    if not isinstance(document, dict) or not isinstance(document.get("peers"), list):
        raise ProtocolError("the node's status answer has no peers list")
    if not all(isinstance(row, dict) for row in document["peers"]):
        raise ProtocolError("the node's status answer has malformed peers")
    return document


def peer_state(row: Mapping[str, Any]) -> str:
    """A word or two for a peer's row; "in sync" only with nothing pending and a match."""
    if row.get("in_sync"):
        return "in sync"
    if row.get("link_up") is not True:
        return "down" if row.get("url") else "not configured"
    if row.get("backlog_ops") or row.get("behind_ops"):
        return "catching up"
    validate = row.get("last_validate")
    if not validate:
        return "not validated"
    return "differs" if validate.get("differences") else "pending"


def format_status(document: Mapping[str, Any]) -> str:
    now_ms = wall_clock_ms()
    header = ("PEER", "LINK", "CLOCK", "LAG", "BACKLOG", "BEHIND", "CONFLICTS", "VALIDATE", "STATE")
    lines = [header]
    notes = []
    for row in document["peers"]:
        offset = row.get("clock_offset_seconds")
        validate = row.get("last_validate")
        checked = (
            "never"
            if not validate
            else f"{validate['differences']} diff, "
            f"{_seconds((now_ms - validate['time_ms']) / 1000)} ago"
        )
        lines.append(
            (
                str(row.get("peer")),
                {True: "up", False: "down"}.get(row.get("link_up"), "-"),
                "-" if offset is None else f"{offset:+.3f}s",
                _seconds(row.get("lag_seconds")),
                _pending(row.get("backlog_ops"), row.get("backlog_bytes")),
                _pending(row.get("behind_ops"), row.get("behind_bytes")),
                str(row.get("conflicts", 0)),
                checked,
                peer_state(row),
            )
        )
        if row.get("last_error"):
            notes.append(f"{row.get('peer')}: last error: {row['last_error']}")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in lines]  # fmt: skip
    title = f"node {document.get('node_id')}: {len(document['peers'])} peer(s)"
    return "\n".join([title, *table, *notes])


def _seconds(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}s"


def _pending(ops: Any, size: Any) -> str:
    return "-" if ops is None else f"{ops} ({size or 0} B)"
