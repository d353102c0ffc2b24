"""The ``lakenode`` command line: subcommands, starting with ``serve``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from node.config import OneLineParser, ServeConfig, add_serve_arguments, resolve_serve_config
from node.logfile import LOG_FORMAT, add_log_file
from node.supervisor import start_supervisor, worker_index

log = logging.getLogger("lakenode")

GIL_SWITCH_INTERVAL_S = 0.001


Runner = Callable[[argparse.ArgumentParser, argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand other than serve. Its module is imported only when the parser needs it:
    ``lakenode serve`` must not pay for every tool's imports (with several workers it execs
    the supervisor before importing the server at all)."""

    name: str
    help: str
    module: str  # under node.cli
    add_arguments: str  # (parser) -> None
    run: str  # (parser, args) -> exit status

    def _function(self, name: str) -> Callable[..., int | None]:
        function: Callable[..., int | None] = getattr(
            importlib.import_module(f"node.cli.{self.module}"), name
        )
        return function

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        self._function(self.add_arguments)(parser)

    def runner(self) -> Runner:
        run = self._function(self.run)
        return lambda parser, args: int(run(parser, args) or 0)


COMMANDS: tuple[Command, ...] = (
    Command("keys", "manage access keys", "keys", "add_keys_arguments", "run_keys"),
    Command("repl", "replication: pull, push, bootstrap, validate, status, conflicts, gc, forget",
            "repl", "add_repl_arguments", "run_repl"),
    Command("status", "node, storage, maintenance and replication summary", "admin",
            "add_status_arguments", "run_status"),
    Command("maintenance", "maintenance mode: enable|disable|status", "admin",
            "add_maintenance_arguments", "run_maintenance"),
    Command("fsck", "check catalog <-> manifests <-> segments; exit 0 only when clean", "ops",
            "add_fsck_arguments", "run_ops"),
    Command("scrub", "verify every stored chunk's BLAKE3; --repair from a peer", "ops",
            "add_scrub_arguments", "run_ops"),
    Command("gc", "segment garbage collection: plan, run, rewrite", "ops", "add_gc_arguments",
            "run_ops"),
    Command("mpu-gc", "abort stale multipart uploads: plan, run", "ops",
            "add_mpu_gc_arguments", "run_ops"),
    Command("rebuild-index", "recreate meta.db from the segments (stopped node)", "backup",
            "add_rebuild_arguments", "run_rebuild"),
    Command("snapshot", "consistent copy of the catalog and segments into --out DIR", "backup",
            "add_snapshot_arguments", "run_snapshot"),
    Command("restore", "put a snapshot back into a stopped data dir", "backup",
            "add_restore_arguments", "run_restore"),
    Command("support-bundle", "write a tar.gz for support (no secrets)", "admin",
            "add_support_bundle_arguments", "run_support_bundle"),
)  # fmt: skip


def build_parser(
    serve_only: bool = False,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line's parser and each subcommand's; ``serve_only``: without the other
    subcommands (and their imports), for ``lakenode serve``."""
    parser = OneLineParser(prog="lakenode", description="Replicated S3-compatible storage node")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    serve_parser = commands.add_parser("serve", help="serve S3 on --listen from --data-dir")
    add_serve_arguments(serve_parser)
    subparsers: dict[str, argparse.ArgumentParser] = {"serve": serve_parser}
    for command in () if serve_only else COMMANDS:
        subparsers[command.name] = commands.add_parser(command.name, help=command.help)
        command.add_to(subparsers[command.name])
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser, subparsers = build_parser(serve_only=arguments[:1] == ["serve"])
    args = parser.parse_args(arguments)
    if args.command == "serve":
        return serve(resolve_serve_config(subparsers["serve"], args))
    for command in COMMANDS:
        if args.command == command.name:
            return command.runner()(subparsers[command.name], args)
    parser.error(f"unknown command {args.command}")


def serve(config: ServeConfig) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    worker = worker_index()
    if config.log_path is not None:
        try:
            add_log_file(config.log_path, rotate=worker is None)
        except OSError as exc:
            sys.stderr.write(f"lakenode serve: cannot write log file {config.log_path}: {exc}\n")
            return 1
    if worker is None:
        if not config.auth:
            log.warning("authentication is OFF (--auth off): for local development only")
        if config.workers > 1:
            # Before the server's imports: the workers pay them, the supervisor does not.
            return start_supervisor(config)
    return _serve_here(config, worker)


def _serve_here(config: ServeConfig, worker: int | None) -> int:
    """Serve in this process: the whole node, or one worker of a supervisor's."""
    from node.app import build_app
    from node.cli.repl_bootstrap import unfinished_bootstrap
    from node.serving import run_servers
    from node.supervisor import die_with_supervisor, inherited_sockets, worker_recovers
    from storage.clock import set_wall_clock_offset_ms

    # Metadata reads and large-chunk hashing run in threads. With CPython's default 5 ms GIL
    # switch interval, a thread that wakes up waits for the event loop to give up the GIL
    # (a convoy): measured on 4 KiB GETs at c=16, uncached reads went from 2.6k to 5.3k
    # ops/s with 1 ms, with no loss on 64 MiB transfers.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    offset = os.environ.get("LAKENODE_CLOCK_OFFSET_MS")
    if offset:  # tests of the clock-skew guard only
        set_wall_clock_offset_ms(int(offset))
        log.warning("wall clock shifted by %s ms (LAKENODE_CLOCK_OFFSET_MS): tests only", offset)
    unfinished = unfinished_bootstrap(config.data_dir)
    if unfinished is not None:
        sys.stderr.write(
            f"lakenode serve: the bootstrap of {config.data_dir} from node {unfinished.peer} is"
            f" unfinished ({unfinished.objects_done} of {unfinished.objects_total} objects):"
            " run `lakenode repl bootstrap --from URL` again to finish it first\n"
        )
        return 1
    if worker is None:
        return run_servers(config, build_app(config))
    # Started by a supervisor: serve on the sockets it bound.
    die_with_supervisor()
    # Whole lines: the workers share stdout (the access log) and stderr.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Not a line per request forwarded to the primary (node/internal.py uses httpx).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build_app(config, worker, recover=worker_recovers())
    return run_servers(config, app, inherited_sockets())
