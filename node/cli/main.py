"""The ``lakenode`` command line: subcommands, starting with ``serve``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from node.cli.admin import (
    add_maintenance_arguments,
    add_status_arguments,
    add_support_bundle_arguments,
    run_maintenance,
    run_status,
    run_support_bundle,
)
from node.cli.backup import (
    add_rebuild_arguments,
    add_restore_arguments,
    add_snapshot_arguments,
    run_rebuild,
    run_restore,
    run_snapshot,
)
from node.cli.keys import add_keys_arguments, run_keys
from node.cli.ops import (
    add_fsck_arguments,
    add_gc_arguments,
    add_mpu_gc_arguments,
    add_scrub_arguments,
    run_ops,
)
from node.cli.repl import add_repl_arguments, run_repl
from node.cli.repl_bootstrap import unfinished_bootstrap
from node.config import OneLineParser, ServeConfig, add_serve_arguments, resolve_serve_config
from node.logfile import LOG_FORMAT, add_log_file
from storage.clock import set_wall_clock_offset_ms

log = logging.getLogger("lakenode")

GIL_SWITCH_INTERVAL_S = 0.001


Runner = Callable[[argparse.ArgumentParser, argparse.Namespace], int]

# Every subcommand but serve: (name, help, add its arguments, run it).
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Runner], ...] = (
    ("keys", "manage access keys", add_keys_arguments, run_keys),
    ("repl", "replication: pull, push, bootstrap, validate, status, conflicts, gc, forget",
     add_repl_arguments, run_repl),
    ("status", "node, storage, maintenance and replication summary", add_status_arguments,
     run_status),
    ("maintenance", "maintenance mode: enable|disable|status", add_maintenance_arguments,
     run_maintenance),
    ("fsck", "check catalog <-> manifests <-> segments; exit 0 only when clean",
     add_fsck_arguments, run_ops),
    ("scrub", "verify every stored chunk's BLAKE3; --repair from a peer", add_scrub_arguments,
     run_ops),
    ("gc", "segment garbage collection: plan, run, rewrite", add_gc_arguments, run_ops),
    ("mpu-gc", "abort stale multipart uploads: plan, run", add_mpu_gc_arguments, run_ops),
    ("rebuild-index", "recreate meta.db from the segments (stopped node)",
     add_rebuild_arguments, run_rebuild),
    ("snapshot", "consistent copy of the catalog and segments into --out DIR",
     add_snapshot_arguments, run_snapshot),
    ("restore", "put a snapshot back into a stopped data dir", add_restore_arguments,
     run_restore),
    ("support-bundle", "write a tar.gz for support (no secrets)", add_support_bundle_arguments,
     run_support_bundle),
)  # fmt: skip


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = OneLineParser(prog="lakenode", description="Replicated S3-compatible storage node")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    serve_parser = commands.add_parser("serve", help="serve S3 on --listen from --data-dir")
    add_serve_arguments(serve_parser)
    subparsers: dict[str, argparse.ArgumentParser] = {"serve": serve_parser}
    for name, help_text, add_arguments, _run in COMMANDS:
        subparsers[name] = commands.add_parser(name, help=help_text)
        add_arguments(subparsers[name])
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(resolve_serve_config(subparsers["serve"], args))
    for name, _help, _add, run in COMMANDS:
        if args.command == name:
            return run(subparsers[name], args)
    parser.error(f"unknown command {args.command}")


def serve(config: ServeConfig) -> int:
    from node.app import build_app
    from node.serving import run_servers, start_supervisor
    from node.supervisor import die_with_supervisor, inherited_sockets, worker_index

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
    worker = worker_index()
    if worker is not None:  # started by a supervisor: serve on the sockets it bound
        die_with_supervisor()
        # Whole lines: the workers share stdout (the access log) and stderr.
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        # Not a line per request forwarded to the primary (node/internal.py uses httpx).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return run_servers(config, build_app(config, worker), inherited_sockets())
    if not config.auth:
        log.warning("authentication is OFF (--auth off): for local development only")
    if config.workers > 1:
        return start_supervisor(config)
    return run_servers(config, build_app(config))
