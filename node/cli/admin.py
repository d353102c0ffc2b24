"""``lakenode maintenance enable|disable|status``, ``lakenode status``, ``lakenode
support-bundle``: the operator's view of one data dir, running node or not.

Each works on a stopped data dir (opening its store) and beside a running node (through its
admin channel, node/admin/client.py). ``maintenance enable`` on a stopped data dir records
the flag: the node then starts in maintenance mode. Errors are one line on stderr and exit
status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from node.admin.client import (
    ANSWER_MARGIN_S,
    AdminChannel,
    AdminError,
    on_store_or_node,
    set_maintenance,
)
from node.admin.maintenance import DEFAULT_DRAIN_TIMEOUT_S
from node.admin.status import gather_status
from node.cli.status_view import render_status
from node.cli.support_bundle import write_bundle
from node.config import parse_duration_ms
from storage.errors import StorageError
from storage.ops import operator_state
from storage.store import Store

T = TypeVar("T")


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("LAKENODE_DATA_DIR", "./data")),
        help="data directory (default ./data) [env LAKENODE_DATA_DIR]",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_maintenance_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    enable = actions.add_parser(
        "enable", help="refuse writes (503 SlowDown), pause pulls; returns once writes drained"
    )
    enable.add_argument(
        "--timeout",
        default=f"{DEFAULT_DRAIN_TIMEOUT_S:g}s",
        help="how long to wait for writes in flight (default %(default)s)",
    )
    _common(enable)
    _common(actions.add_parser("disable", help="accept writes again, resume pulls"))
    _common(actions.add_parser("status", help="is maintenance mode on"))


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)


def add_support_bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.tar.gz")
    _common(parser, json_flag=False)


def _run(command: str, work: Coroutine[Any, Any, T]) -> T | None:
    """Run ``work``; a failure is one line on stderr and None."""
    try:
        return asyncio.run(work)
    except (AdminError, StorageError, OSError) as exc:
        sys.stderr.write(f"lakenode {command}: {exc}\n")
        return None


def _print(document: Any, as_json: bool, text: str) -> None:
    print(json.dumps(document, indent=2, sort_keys=True) if as_json else text)


# ---- maintenance ----------------------------------------------------------------------------


def run_maintenance(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    timeout_s = DEFAULT_DRAIN_TIMEOUT_S
    if args.action == "enable":
        try:
            timeout_s = parse_duration_ms(args.timeout) / 1000
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --timeout: {exc}")
    document = _run("maintenance", maintenance(args.data_dir, args.action, timeout_s))
    if document is None:
        return 1
    _print(document, args.json, describe_maintenance(document))
    return 0


async def maintenance(data_dir: Path, action: str, timeout_s: float) -> dict[str, Any]:
    async def offline(store: Store) -> dict[str, Any]:
        if action == "status":
            record = await operator_state.maintenance(store)
        else:
            record = await operator_state.set_maintenance(store, action == "enable")
        return {"running": False, "enabled": record.enabled, "changed_ms": record.changed_ms}

    async def online(channel: AdminChannel) -> dict[str, Any]:
        if action == "status":
            answer = await channel.get("/admin/maintenance")
        else:
            answer = await set_maintenance(channel, action == "enable", timeout_s)
        return {"running": True, **answer}

    return await on_store_or_node(data_dir, offline, online, timeout_s + ANSWER_MARGIN_S)


def describe_maintenance(document: dict[str, Any]) -> str:
    running = document.get("running")
    if document.get("enabled"):
        where = "" if running else " (no node running: it will start in maintenance mode)"
        return f"maintenance mode ON: writes refused (503 SlowDown), reads served{where}"
    return "maintenance mode off: writes accepted" + ("" if running else " (no node running)")


# ---- status ---------------------------------------------------------------------------------


def run_status(_parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    document = _run("status", gather_status(args.data_dir))
    if document is None:
        return 1
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        render_status(document, Console())
    return 0


# ---- support bundle -------------------------------------------------------------------------


def run_support_bundle(_parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    members = _run("support-bundle", write_bundle(args.data_dir, args.out))
    if members is None:
        return 1
    print(f"support bundle written to {args.out}: {', '.join(members)}")
    return 0
