"""``lakenode repl pull|validate``: replication jobs run from the command line.

``pull`` brings a stopped node's data dir up to date with peers, once: for catching a node up
before starting it, with the same code as a running node's pull tasks. A running node holds
its data dir's lock, so ``pull`` refuses a data dir in use instead of opening the store twice.

``validate`` compares this site with a peer through their Merkle digests and prints every
(bucket, key) that differs. On a stopped data dir it reads the store; beside a running node
it asks that node (whose address the node records in DATA/serve.json).

Exit status: 0 when caught up / the sites agree, 1 when a pull failed / they differ or a side
is unreachable, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from node.config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_REGION,
    DEFAULT_SECRET_KEY,
    add_peer_argument,
    check_peer_credentials,
    parse_duration_ms,
    parse_key,
    parse_region,
    resolve_peers,
)
from node.peers import PEER_TIMEOUT_S, peer_signer
from replication.client import PeerClient, PeerUnavailable, RemoteDigests, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState, PullStats, identify_peer, pull_once
from replication.validate import Difference, WalkStats, compare
from storage.errors import StorageError
from storage.store import DataDirLocked, Store, StoreConfig

T = TypeVar("T")
SERVE_RECORD = "serve.json"  # written by a running node: where it listens


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
        help="also compare chunk hashes (not implemented yet: refused)",
    )
    _add_common(validate)


def _add_common(pull: argparse.ArgumentParser) -> None:
    pull.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("LAKENODE_DATA_DIR", "./data")),
        help="data directory of a stopped node (default ./data) [env LAKENODE_DATA_DIR]",
    )
    pull.add_argument(
        "--peer-access-key",
        help="access key for the peers [env LAKENODE_PEER_ACCESS_KEY, else LAKENODE_ACCESS_KEY]",
    )
    pull.add_argument(
        "--peer-secret-key",
        help="secret key for the peers [env LAKENODE_PEER_SECRET_KEY, else LAKENODE_SECRET_KEY]",
    )
    pull.add_argument(
        "--repl-max-clock-skew",
        help="refuse changes stamped further ahead of our clock (default 1s) "
        "[env LAKENODE_REPL_MAX_CLOCK_SKEW]",
    )
    pull.add_argument("--region", help="SigV4 region of the peers [env LAKENODE_REGION]")


def run_repl(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    peers = resolve_peers(parser, args.peer)
    if not peers:
        parser.error("argument --peer: at least one peer is required")
    if not (args.data_dir / "node_id").exists():
        parser.error(f"argument --data-dir: no lakenode data in {args.data_dir}")
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
    skew_ms = _setting(
        parser,
        args.repl_max_clock_skew,
        "--repl-max-clock-skew",
        parse_duration_ms,
        ("LAKENODE_REPL_MAX_CLOCK_SKEW",),
        "1s",
    )
    region = _setting(parser, args.region, "--region", parse_region,
                      ("LAKENODE_REGION",), DEFAULT_REGION)  # fmt: skip
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sign = peer_signer(access_key, secret_key, region)
    if args.action == "validate":
        if args.deep:
            parser.error("argument --deep: chunk-hash comparison is not implemented yet")
        return asyncio.run(validate_all(args.data_dir, peers, sign))
    return asyncio.run(pull_all(args.data_dir, peers, sign, skew_ms))


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


async def pull_all(data_dir: Path, peers: tuple[str, ...], sign: Signer, skew_ms: int) -> int:
    try:
        store = await Store.open(StoreConfig(data_dir))
    except DataDirLocked as exc:
        _fail(f"{exc}: stop that node first (a running node pulls from its --peer itself)")
        return 1
    try:
        for url in peers:
            if not await pull_peer(store, url, sign, skew_ms):
                return 1
        return 0
    finally:
        await store.close()


async def pull_peer(store: Store, url: str, sign: Signer, skew_ms: int) -> bool:
    """Pull one peer until caught up; print one line saying what happened."""
    async with PeerClient(url, sign, PEER_TIMEOUT_S) as client:
        state = PeerState(url=client.base_url)
        try:
            name = await identify_peer(store, client, state)
            stats = await pull_once(store, client, name, skew_ms, state=state)
        except (PeerUnavailable, ProtocolError, StorageError) as exc:
            _fail(f"{client.base_url}: {type(exc).__name__}: {exc}")
            return False
    print(f"pulled {client.base_url} (node {name}) into {store.node_id}: {_summary(stats)}")
    return True


def _summary(stats: PullStats) -> str:
    return f"caught up; {stats.summary()}"


def _fail(message: str, action: str = "pull") -> None:
    sys.stderr.write(f"lakenode repl {action}: {message}\n")


# ---- validate ----------------------------------------------------------------------------------


async def validate_all(data_dir: Path, peers: tuple[str, ...], sign: Signer) -> int:
    """Compare the local site with each peer; print the differences; 0 only if all agree."""
    status = 0
    for url in peers:
        try:
            differences, stats = await _validate_one(data_dir, url, sign)
        except (PeerUnavailable, ProtocolError, StorageError, OSError) as exc:
            _fail(f"{url}: {type(exc).__name__}: {exc}", "validate")
            status = 1
            continue
        for difference in differences:
            print(
                f"{difference.bucket}\t{difference.key}\t"
                f"here={_describe(difference.local)}\tpeer={_describe(difference.remote)}"
            )
        verdict = "agree" if not differences else f"{len(differences)} difference(s)"
        print(
            f"validate {url}: {verdict} ({stats.nodes_compared} nodes, "
            f"{stats.leaf_ranges_compared} leaf ranges compared)"
        )
        status = status or (1 if differences else 0)
    return status


def _describe(leaf: bytes | None) -> str:
    return "absent" if leaf is None else f"state:{leaf.hex()[:16]}"


async def _validate_one(
    data_dir: Path, url: str, sign: Signer
) -> tuple[list[Difference], WalkStats]:
    async with PeerClient(url, sign, PEER_TIMEOUT_S) as peer:
        try:
            store = await Store.open(StoreConfig(data_dir))
        except DataDirLocked:
            local_url = _running_node_url(data_dir)
            async with PeerClient(local_url, sign, PEER_TIMEOUT_S) as local:
                return await compare(RemoteDigests(local), RemoteDigests(peer))
        try:
            return await compare(store, RemoteDigests(peer))
        finally:
            await store.close()


def _running_node_url(data_dir: Path) -> str:
    record = data_dir / SERVE_RECORD
    try:
        return str(json.loads(record.read_text())["url"])
    except (OSError, ValueError, KeyError) as exc:
        raise StorageError(f"{data_dir} is in use but {record} does not say where") from exc
