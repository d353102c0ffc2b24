"""``lakenode rebuild-index``, ``lakenode snapshot --out DIR``, ``lakenode restore --from DIR``.

* ``rebuild-index`` recreates ``meta.db`` from the segments and the key journal
  (storage/ops/rebuild.py) on a stopped data dir. It is not a job: a job runs on an open store,
  and there is no store without a catalog.
* ``snapshot`` is the job ``snapshot`` (node/admin/snapshot_job.py, not quiet: it runs
  beside live writers): in process on a stopped data dir, else by the running node through
  the admin channel (storage/ops/snapshot.py).
* ``restore`` puts a snapshot back into a stopped data dir.

Exit status: 0 done; 4 rebuild-index rebuilt the catalog but skipped something (the report
lists it); 1 refused or failed (one line on stderr, nothing changed); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from node.admin.client import AdminError, run_job
from node.admin.jobs import JobReport
from node.admin.progress import cli_progress
from node.config import add_data_dir_argument, parse_node_id
from storage.errors import StorageError
from storage.ops import snapshot
from storage.ops.jobstate import Progress
from storage.ops.rebuild import rebuild_index

# ---- command line ------------------------------------------------------------------------------


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    add_data_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_rebuild_arguments(parser: argparse.ArgumentParser) -> None:
    _data_dir_argument(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if meta.db is healthy (it is kept as meta.db.broken-<time>)",
    )
    parser.add_argument(
        "--node-id", help="this node's id, if DATA/node_id was lost too (its writes' origin)"
    )


def add_snapshot_arguments(parser: argparse.ArgumentParser) -> None:
    _data_dir_argument(parser)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="new directory for the snapshot"
    )
    parser.add_argument(
        "--copy",
        action="store_true",
        help="copy every segment (default: hard-link sealed ones on the same filesystem)",
    )


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    _data_dir_argument(parser)
    parser.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="DIR", help="the snapshot"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="restore over a data dir that is not empty (its contents go to replaced-<time>/)",
    )


def run_rebuild(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.node_id is not None:
        try:
            parse_node_id(args.node_id)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument --node-id: {exc}")
    return _report(
        "rebuild-index",
        args.json,
        lambda progress: rebuild_index(args.data_dir, progress, args.force, args.node_id),
    )


def run_snapshot(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    params = {"out": str(args.out.absolute()), "link": not args.copy}
    return _report(
        "snapshot",
        args.json,
        lambda progress: asyncio.run(run_job(args.data_dir, "snapshot", params, progress)),
    )


def run_restore(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    return _report(
        "restore",
        args.json,
        lambda progress: snapshot.restore_snapshot(
            args.source, args.data_dir, progress, args.force
        ),
    )


def _report(command: str, as_json: bool, work: Callable[[Progress], JobReport]) -> int:
    """Run ``work`` with progress on stderr (none with --json); print its report."""
    try:
        with cli_progress(command, quiet=as_json) as progress:
            report = work(progress)
    except (StorageError, AdminError, OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"lakenode {command}: {exc}\n")
        return 1
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_human(report)
    return int(report["exit_code"])


def _print_human(report: JobReport) -> None:
    for name, value in report.items():
        if name == "exit_code" or value in (None, [], {}):
            continue
        shown = json.dumps(value) if isinstance(value, list | dict) else value
        print(f"{name.replace('_', ' ')}: {shown}")
