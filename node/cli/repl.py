"""``lakenode repl``: the replication commands' arguments, and which module runs each.

``pull`` and ``push`` (node/cli/repl_pull.py) catch a stopped data dir up with peers or peers
up with it; ``validate`` (node/cli/repl_validate.py) compares sites through their Merkle
digests; ``status`` (node/cli/repl_status.py) prints each peer's replication state;
``bootstrap --from URL`` (node/cli/repl_bootstrap.py, replication/bootstrap.py) fills a new,
stopped site with a peer's full state and then catches up with its log, resuming after a crash;
``gc``, ``conflicts`` and ``forget`` are in node/cli/repl_gc.py. What they share (peer
credentials, the running node's client) is in node/cli/repl_common.py.

Exit status: 0 when caught up / the sites agree, 1 when a pull failed / they differ or a side
is unreachable, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from node.cli.repl_bootstrap import bootstrap_site
from node.cli.repl_common import add_peer_credentials, resolve_peer_credentials, resolve_setting
from node.cli.repl_gc import GC_ACTIONS, add_gc_arguments, run_gc_action
from node.cli.repl_pull import pull_all, push_all
from node.cli.repl_status import status_all
from node.cli.repl_validate import validate_all
from node.config import (
    add_data_dir_argument,
    add_peer_argument,
    parse_duration_ms,
    parse_peer_url,
    resolve_peers,
)
from replication.bootstrap import DEFAULT_PAGE_SIZE
from replication.protocol import MAX_PAGE_CHANGES


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
    skew_ms = resolve_setting(
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
