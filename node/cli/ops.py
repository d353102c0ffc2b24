"""``lakenode fsck|scrub|gc|mpu-gc``: storage maintenance from the command line.

Each command builds a job request (node/admin/ops_jobs.py) and runs it with
``node.admin.client.run_job``: on a stopped data dir in this process, beside a running node
by that node through its admin channel (which refuses the quiet jobs, those that move or
delete data, outside maintenance mode). Output is a human report, or the job's JSON with
``--json``.

Exit status: the job's (0 clean/done, 1 findings or corruption left), 1 when the job could
not run, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.admin import ops_jobs
from node.admin.client import AdminError, run_job
from node.admin.progress import cli_progress
from node.cli.repl_common import add_peer_credentials, resolve_peer_credentials
from node.config import add_data_dir_argument, add_peer_argument, resolve_peers
from storage.errors import StorageError
from storage.ops.gc import BATCH_LIVE_BYTES, DEFAULT_THRESHOLD

_AGE_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


# ---- arguments -------------------------------------------------------------------------------


def add_fsck_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)


def add_scrub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mb-per-s", type=_positive_float, help="read at most this many MB/s (default: no limit)"
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="fetch each corrupt chunk again from a peer (needs maintenance mode on a live node)",
    )
    add_peer_argument(parser, "peer to repair from (default: the peers this node replicates with)")
    add_peer_credentials(parser)
    _add_common(parser)


def add_gc_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    plan = actions.add_parser("plan", help="dry run: bytes and live ratio per segment")
    _add_threshold(plan)
    _add_common(plan)
    run = actions.add_parser("run", help="rewrite segments below the threshold (needs --force)")
    _add_threshold(run)
    run.add_argument("--force", action="store_true", help="really rewrite and delete segments")
    _add_batch(run)
    _add_common(run)
    rewrite = actions.add_parser("rewrite", help="rewrite the given segments whatever their ratio")
    rewrite.add_argument(
        "--segment",
        action="append",
        required=True,
        type=_segment_id,
        metavar="ID",
        help="segment id (decimal, or its 16-hex-digit file name); repeatable",
    )
    _add_batch(rewrite)
    _add_common(rewrite)


def add_mpu_gc_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    for name, text in (("plan", "list stale multipart uploads"), ("run", "abort them")):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--older-than",
            type=parse_age_ms,
            default=parse_age_ms("7d"),
            metavar="AGE",
            help="uploads initiated at least this long ago: 7d, 12h, 30m, 0s (default 7d)",
        )
        _add_common(action)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_data_dir_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_threshold(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=_ratio,
        default=DEFAULT_THRESHOLD,
        help=f"rewrite sealed segments with a live ratio below this (default {DEFAULT_THRESHOLD})",
    )


def _add_batch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-mb",
        type=_positive_float,
        default=BATCH_LIVE_BYTES / 1e6,
        help="live data copied per commit, in MB: what a crash can throw away "
        f"(default {BATCH_LIVE_BYTES / 1e6:g})",
    )


def parse_age_ms(text: str) -> int:
    """A non-negative age: ``7d``, ``12h``, ``30m``, ``45s``, ``0s``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid age {text!r} (e.g. 7d, 12h, 30m, 0s)")
    return int(match.group(1)) * _AGE_UNITS_MS[match.group(2)]


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a ratio from 0 to 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _segment_id(text: str) -> int:
    try:
        return int(text, 16) if len(text) == 16 else int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid segment id {text!r}") from None


# ---- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    job: str
    params: dict[str, Any]
    render: Callable[[Mapping[str, Any]], str]


def run_ops(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    request = _request(parser, args)
    if not (args.data_dir / "node_id").exists():
        parser.error(f"argument --data-dir: no lakenode data in {args.data_dir}")
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        with cli_progress(request.job, quiet=args.json) as progress:
            report = asyncio.run(run_job(args.data_dir, request.job, request.params, progress))
    except (AdminError, StorageError, OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif "error" in report:  # the job refused to start (e.g. no peer to repair from)
        sys.stderr.write(f"{parser.prog}: {report['error']}\n")
    else:
        print(request.render(report))
    return int(report["exit_code"])


def _request(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Request:
    if args.command == "fsck":
        return Request(ops_jobs.FSCK.name, {}, format_fsck)
    if args.command == "scrub":
        return _scrub_request(parser, args)
    if args.command == "gc":
        if args.action == "plan":
            return Request(ops_jobs.GC_PLAN.name, {"threshold": args.threshold}, format_gc_plan)
        if args.action == "run":
            if not args.force:
                parser.error("dry run? use gc plan; gc run needs --force")
            params = {"threshold": args.threshold, "batch_bytes": int(args.batch_mb * 1e6)}
            return Request(ops_jobs.GC_RUN.name, params, format_gc_run)
        params = {"segments": args.segment, "batch_bytes": int(args.batch_mb * 1e6)}
        return Request(ops_jobs.GC_REWRITE.name, params, format_gc_run)
    job = ops_jobs.MPU_GC_PLAN if args.action == "plan" else ops_jobs.MPU_GC_RUN
    return Request(job.name, {"older_than_ms": args.older_than}, format_mpu_gc)


def _scrub_request(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Request:
    params: dict[str, Any] = {"mb_per_s": args.mb_per_s}
    if not args.repair:
        if args.peer:
            parser.error("argument --peer: only with --repair")
        return Request(ops_jobs.SCRUB.name, params, format_scrub)
    credentials = resolve_peer_credentials(parser, args)
    params.update(
        peers=list(resolve_peers(parser, args.peer)),
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=credentials.region,
        peer_ca=None if credentials.peer_ca is None else str(credentials.peer_ca),
    )
    return Request(ops_jobs.SCRUB_REPAIR.name, params, format_scrub)


# ---- human reports ---------------------------------------------------------------------------


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]  # fmt: skip


def format_fsck(report: Mapping[str, Any]) -> str:
    checked = report["checked"]
    summary = (
        f"{checked.get('versions', 0)} versions, {checked.get('parts', 0)} parts, "
        f"{checked.get('chunk_references', 0)} chunk references, "
        f"{checked.get('segments', 0)} segments checked"
    )
    if report["clean"]:
        return f"fsck: clean ({summary})"
    rows = [(f["code"], f["subject"], f["message"]) for f in report["findings"]]
    lines = table(("CODE", "SUBJECT", "PROBLEM"), rows)
    omitted = sum(report.get("omitted", {}).values())
    more = f" (and {omitted} more not listed)" if omitted else ""
    return "\n".join([*lines, f"fsck: {len(rows)} finding(s){more} ({summary})"])


def format_scrub(report: Mapping[str, Any]) -> str:
    lines = [f"corrupt: {name}" for name in report["corrupt_objects"]]
    repaired = len(report["repaired_chunks"])
    for digest, reason in sorted(report["repair_failures"].items()):
        lines.append(f"not repaired: chunk {digest[:16]}: {reason}")
    for damage in report["unreferenced_damage"]:
        lines.append(
            f"unreferenced damage: segment {damage['segment_id']} bytes "
            f"{damage['start']}-{damage['end']}: {damage['reason']} (garbage: gc removes it)"
        )
    corrupt = len(report["corrupt_chunks"])
    verdict = (
        "clean"
        if not corrupt
        else f"{corrupt} corrupt chunk(s) in {len(report['corrupt_objects'])} object(s), "
        f"{repaired} repaired"
    )
    lines.append(
        f"scrub: {verdict} ({report['checked_bytes']} bytes in "
        f"{report['checked_chunks']} records checked)"
    )
    return "\n".join(lines)


def format_gc_plan(report: Mapping[str, Any]) -> str:
    rows = [
        (
            str(s["segment_id"]),
            str(s["file_bytes"]),
            str(s["live_bytes"]),
            str(s["kept_bytes"]),
            f"{s['live_ratio']:.2f}",
            "yes" if s["rewrite"] else ("active" if not s["sealed"] else "no"),
        )
        for s in report["segments"]
    ]
    totals = report["totals"]
    header = ("SEGMENT", "FILE_BYTES", "LIVE_BYTES", "KEPT_BYTES", "RATIO", "REWRITE")
    return "\n".join(
        [
            *table(header, rows),
            f"total: {totals['segments']} segment(s), {totals['file_bytes']} bytes, "
            f"{totals['live_bytes']} live; {totals['rewrite_segments']} with a ratio below "
            f"{report['threshold']} would return {totals['reclaimable_bytes']} bytes",
        ]
    )


def format_gc_run(report: Mapping[str, Any]) -> str:
    lines = [f"segment {k['segment_id']} kept: {k['reason']}" for k in report["kept"]]
    lines.append(
        f"gc: rewrote {report['segments_rewritten']} segment(s), reclaimed "
        f"{report['reclaimed_bytes']} bytes ({report['copied_bytes']} bytes of live records "
        f"copied, {report['versions_rewritten']} manifests rewritten)"
    )
    return "\n".join(lines)


def format_mpu_gc(report: Mapping[str, Any]) -> str:
    now_ms = time.time() * 1000
    rows = [
        (
            u["bucket"],
            u["key"],
            u["upload_id"],
            f"{(now_ms - u['initiated_ms']) / 86_400_000:.1f}d",
            str(u["parts"]),
            str(u["part_bytes"]),
            "aborted" if u["upload_id"] in report["aborted"] else "",
        )
        for u in report["uploads"]
    ]
    lines = table(("BUCKET", "KEY", "UPLOAD_ID", "AGE", "PARTS", "BYTES", ""), rows) if rows else []
    lines.append(f"mpu-gc: {len(rows)} stale upload(s), {len(report['aborted'])} aborted")
    return "\n".join(lines)
