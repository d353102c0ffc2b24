"""The ``lakenode`` command line: subcommands, starting with ``serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from node.admin_cli import (
    add_maintenance_arguments,
    add_status_arguments,
    add_support_bundle_arguments,
    run_maintenance,
    run_status,
    run_support_bundle,
)
from node.backup_cli import (
    add_rebuild_arguments,
    add_restore_arguments,
    add_snapshot_arguments,
    run_rebuild,
    run_restore,
    run_snapshot,
)
from node.bootstrap_cli import unfinished_bootstrap
from node.config import OneLineParser, ServeConfig, add_serve_arguments, resolve_serve_config
from node.keys_cli import add_keys_arguments, run_keys
from node.logfile import LOG_FORMAT, add_log_file
from node.ops_cli import (
    OPS_COMMANDS,
    add_fsck_arguments,
    add_gc_arguments,
    add_mpu_gc_arguments,
    add_scrub_arguments,
    run_ops,
)
from node.repl_cli import add_repl_arguments, run_repl
from storage.hlc import set_wall_clock_offset_ms

log = logging.getLogger("lakenode")

GIL_SWITCH_INTERVAL_S = 0.001


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = OneLineParser(prog="lakenode", description="Replicated S3-compatible storage node")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    serve_parser = commands.add_parser("serve", help="serve S3 on --listen from --data-dir")
    add_serve_arguments(serve_parser)
    keys_parser = commands.add_parser("keys", help="manage access keys")
    add_keys_arguments(keys_parser)
    repl_parser = commands.add_parser(
        "repl", help="replication: pull, push, bootstrap, validate, status, conflicts"
    )
    add_repl_arguments(repl_parser)
    subparsers: dict[str, argparse.ArgumentParser] = {
        "serve": serve_parser,
        "keys": keys_parser,
        "repl": repl_parser,
    }
    # ops-tools: storage maintenance (node/ops_cli.py)
    fsck_parser = commands.add_parser(
        "fsck", help="check catalog <-> manifests <-> segments; exit 0 only when clean"
    )
    add_fsck_arguments(fsck_parser)
    scrub_parser = commands.add_parser(
        "scrub", help="verify every stored chunk's BLAKE3; --repair from a peer"
    )
    add_scrub_arguments(scrub_parser)
    gc_parser = commands.add_parser("gc", help="segment garbage collection: plan, run, rewrite")
    add_gc_arguments(gc_parser)
    mpu_gc_parser = commands.add_parser("mpu-gc", help="abort stale multipart uploads")
    add_mpu_gc_arguments(mpu_gc_parser)
    subparsers.update(fsck=fsck_parser, scrub=scrub_parser, gc=gc_parser)
    subparsers["mpu-gc"] = mpu_gc_parser
    # ops-admin: maintenance mode, status, support bundle (node/admin_cli.py).
    for name, help_text, add_arguments in (
        ("maintenance", "maintenance mode: enable|disable|status", add_maintenance_arguments),
        ("status", "node, storage, maintenance and replication summary", add_status_arguments),
        ("support-bundle", "write a tar.gz for support (no secrets)", add_support_bundle_arguments),
    ):
        subparsers[name] = commands.add_parser(name, help=help_text)
        add_arguments(subparsers[name])
    # ops-rebuild: rebuild-index, snapshot, restore (node/backup_cli.py)
    rebuild_parser = commands.add_parser(
        "rebuild-index", help="recreate meta.db from the segments (stopped node)"
    )
    add_rebuild_arguments(rebuild_parser)
    snapshot_parser = commands.add_parser(
        "snapshot", help="consistent copy of the catalog and segments into --out DIR"
    )
    add_snapshot_arguments(snapshot_parser)
    restore_parser = commands.add_parser(
        "restore", help="put a snapshot back into a stopped data dir"
    )
    add_restore_arguments(restore_parser)
    subparsers |= {
        "rebuild-index": rebuild_parser, "snapshot": snapshot_parser, "restore": restore_parser,
    }  # fmt: skip
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(resolve_serve_config(subparsers["serve"], args))
    if args.command == "keys":
        return run_keys(subparsers["keys"], args)
    if args.command == "repl":
        return run_repl(subparsers["repl"], args)
    if args.command in OPS_COMMANDS:
        return run_ops(subparsers[args.command], args)
    admin_commands = {
        "maintenance": run_maintenance,
        "status": run_status,
        "support-bundle": run_support_bundle,
    }
    if args.command in admin_commands:
        return admin_commands[args.command](subparsers[args.command], args)
    if args.command == "rebuild-index":
        return run_rebuild(subparsers["rebuild-index"], args)
    if args.command == "snapshot":
        return run_snapshot(subparsers["snapshot"], args)
    if args.command == "restore":
        return run_restore(subparsers["restore"], args)
    parser.error(f"unknown command {args.command}")


def serve(config: ServeConfig) -> int:
    from node.app import build_app
    from node.serving import run_servers

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    # Metadata reads and large-chunk hashing run in threads. With CPython's default 5 ms GIL
    # switch interval, a thread that wakes up waits for the event loop to give up the GIL
    # (a convoy): measured on 4 KiB GETs at c=16, uncached reads went from 2.6k to 5.3k
    # ops/s with 1 ms, with no loss on 64 MiB transfers.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    offset = os.environ.get("LAKENODE_CLOCK_OFFSET_MS")
    if offset:  # tests of the clock-skew guard only
        set_wall_clock_offset_ms(int(offset))
        log.warning("wall clock shifted by %s ms (LAKENODE_CLOCK_OFFSET_MS): tests only", offset)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    unfinished = unfinished_bootstrap(config.data_dir)
    if unfinished is not None:
        sys.stderr.write(
            f"lakenode serve: the bootstrap of {config.data_dir} from node {unfinished.peer} is"
            f" unfinished ({unfinished.objects_done} of {unfinished.objects_total} objects):"
            " run `lakenode repl bootstrap --from URL` again to finish it first\n"
        )
        return 1
    if config.log_path is not None:
        try:
            add_log_file(config.log_path)
        except OSError as exc:
            sys.stderr.write(f"lakenode serve: cannot write log file {config.log_path}: {exc}\n")
            return 1
    if not config.auth:
        log.warning("authentication is OFF (--auth off): for local development only")
    return run_servers(config, build_app(config))
