"""``lakenode repl pull``: bring a stopped node's data dir up to date with peers, once.

For catching a node up before starting it (or checking that a peer is reachable and allowed
to be pulled from) without serving. Uses the same code as a running node's pull tasks. A
running node holds its data dir's lock, so this refuses a data dir in use instead of opening
the store twice.

Exit status: 0 when caught up with every peer, 1 when a pull failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
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
from replication.client import PeerClient, PeerUnavailable, Signer
from replication.protocol import ProtocolError
from replication.puller import PeerState, PullStats, identify_peer, pull_once
from storage.errors import StorageError
from storage.store import DataDirLocked, Store, StoreConfig

T = TypeVar("T")


def add_repl_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    pull = actions.add_parser("pull", help="pull changes from peers until caught up, then exit")
    add_peer_argument(pull, "peer to pull from (repeatable)")
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


def _fail(message: str) -> None:
    sys.stderr.write(f"lakenode repl pull: {message}\n")
