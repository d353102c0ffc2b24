"""``python -m tests.bench.run``: benchmark lakenode against a bare-ASGI ceiling and SeaweedFS.

Exit status is non-zero only when a GET returned wrong bytes or a target server failed to
start (or died mid-run); the performance checks at the end are informational.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench import console_cost, report, servers
from tests.bench.http_client import HttpConnection
from tests.bench.payload import Payload
from tests.bench.s3client import Credentials, RequestFailed, S3Client, Signer, load_signer
from tests.bench.workload import (
    NETWORK_ERRORS,
    RunState,
    ServerGone,
    Settings,
    close_clients,
    open_clients,
    run_matrix_cell,
)

CREDS = Credentials("benchkey", "benchsecret")
ALL_TARGETS = ("lakenode", "lakenode-w2", "bare", "seaweedfs")
# What `make bench` measures: lakenode with one and two worker processes against SeaweedFS.
DEFAULT_TARGETS = ("lakenode", "lakenode-w2", "seaweedfs")
DEFAULT_JSON = servers.REPO_ROOT / "build" / "bench" / "results.json"
READY_TIMEOUT_S = 60.0
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 4KiB, 64MiB)")
    return int(match.group(1)) * UNITS[match.group(2).lower()]


def _csv(kind: type[int] | type[str], parse: Any = None) -> Any:
    def convert(text: str) -> list[Any]:
        return [(parse or kind)(part) for part in text.split(",") if part.strip()]

    return convert


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__)
    p.add_argument(
        "--targets",
        type=_csv(str),
        default=list(DEFAULT_TARGETS),
        help=f"comma-separated, from {', '.join(ALL_TARGETS)} (default: %(default)s)",
    )
    p.add_argument("--sizes", type=_csv(int, parse_size), default=[4 << 10, 64 << 20])
    p.add_argument("--concurrency", type=_csv(int), default=[1, 16])
    p.add_argument("--ops", type=int, default=None, help="ops per small-object phase (2000)")
    p.add_argument("--big-count", type=int, default=None, help="objects per >1 MiB phase (32)")
    p.add_argument("--list-ops", type=int, default=None, help="ListObjectsV2 calls (200)")
    p.add_argument("--phase-seconds", type=float, default=None, help="phase deadline (30)")
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--quick", action="store_true", help="smoke run: few ops, short deadlines")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    p.add_argument("--work-dir", type=Path, default=None, help="parent of the temp data dir")
    p.add_argument("--keep-data", action="store_true", help="keep server data and logs")
    p.add_argument(
        "--console-rounds",
        type=int,
        default=4,  # two rounds left one phase 17% apart by noise alone; four settle it
        help="rounds of the console's cost (console off, then on; 0 skips it)",
    )
    p.add_argument(
        "--no-pin-client",
        action="store_true",
        help="let the client run on every CPU (default: pinned to one when there are several)",
    )
    args = p.parse_args(argv)
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(ALL_TARGETS)}")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    return Settings(
        ops=args.ops or (200 if quick else 2000),
        big_count=args.big_count or (4 if quick else 32),
        list_ops=args.list_ops or (20 if quick else 200),
        phase_seconds=args.phase_seconds or (15.0 if quick else 30.0),
        request_timeout=args.request_timeout,
    )


@dataclass
class TargetOutcome:
    status: str  # ok, skipped, failed
    message: str = ""
    state: RunState = field(default_factory=RunState)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "verification_failures": self.state.verification_failures,
            "results": [r.to_json() for r in self.state.results],
        }


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop when available: the client's event loop overhead is CPU the server loses."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


async def prepare_bucket(client: S3Client, bucket: str, timeout: float) -> None:
    """Create the bucket and store one probe object, retrying while the server warms up.

    SeaweedFS answers on its S3 port before its filer and volume servers can take writes.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            status = await client.create_bucket(bucket)
            if status in (200, 409):
                await client.put_object(bucket, "probe/ready", 4096)
                await client.delete_object(bucket, "probe/ready")
                return
            last = f"CreateBucket HTTP {status}"
        except RequestFailed as exc:
            last = str(exc)
        except NETWORK_ERRORS as exc:
            client.conn.drop()
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.5)
    raise ServerGone(f"bucket not usable after {timeout:.0f}s: {last}")


async def bench_target(
    target: servers.Target,
    settings: Settings,
    args: argparse.Namespace,
    payload: Payload,
    signer: Signer,
    state: RunState,
) -> None:
    def make(conn: HttpConnection) -> S3Client:
        return S3Client(conn, CREDS, signer, payload, target.verifies)

    (setup,) = await open_clients(target.host, target.port, 1, make)
    try:
        await prepare_bucket(setup, settings.bucket, READY_TIMEOUT_S)
    finally:
        await close_clients([setup])
    for size in args.sizes:
        for conc in args.concurrency:
            print(f"  {report.size_label(size)} x c={conc}", flush=True)
            clients = await open_clients(target.host, target.port, conc, make)
            try:
                await run_matrix_cell(clients, size, settings, state, target.cpu_seconds)
            finally:
                await close_clients(clients)


def run_target(
    name: str, workdir: Path, settings: Settings, args: argparse.Namespace, payload: Payload
) -> TargetOutcome:
    print(f"\n### {name}", flush=True)
    try:
        target = servers.STARTERS[name](workdir, CREDS.access_key, CREDS.secret_key)
    except servers.TargetUnavailable as exc:
        print(f"  SKIPPED: {exc}", flush=True)
        return TargetOutcome("skipped", str(exc))
    except servers.TargetStartError as exc:
        print(f"  FAILED TO START: {exc}", flush=True)
        return TargetOutcome("failed", f"failed to start: {exc}")
    if not target.verifies:
        print("  note: this target's GET returns an empty body; byte verification is skipped")
    outcome = TargetOutcome("ok")
    try:
        bench = bench_target(target, settings, args, payload, load_signer(), outcome.state)
        run_async(bench)
    except ServerGone as exc:
        outcome.status, outcome.message = "failed", f"server stopped answering: {exc}"
        print(f"  FAILED: {outcome.message}\n{target.log_tail()}", flush=True)
    finally:
        servers.stop(target)
    return outcome


def measure_console_cost(
    workdir: Path, settings: Settings, args: argparse.Namespace, payload: Payload
) -> list[console_cost.Round]:
    """The console's cost (tests/bench/console_cost.py): the main bench's 4 KiB phases."""
    small = argparse.Namespace(**{**vars(args), "sizes": [console_cost.KIB4]})

    def measure(target: servers.Target) -> RunState:
        state = RunState()
        run_async(bench_target(target, settings, small, payload, load_signer(), state))
        return state

    return console_cost.run(
        workdir, CREDS.access_key, CREDS.secret_key, args.console_rounds, settings.bucket, measure
    )


def summarize(outcomes: dict[str, TargetOutcome], args: argparse.Namespace) -> list[str]:
    """Print tables and checks; returns the reasons for a non-zero exit."""
    results = {n: o.state.results for n, o in outcomes.items() if o.state.results}
    report.print_tables(results, args.sizes, args.concurrency)
    print("\nRatios are lakenode ops/s divided by the baseline's (for PUT/GET also MB/s).")
    report.print_summary(results, args.sizes, args.concurrency)
    print("'bare' GETs carry no body and are not verified; its GET MB/s is not comparable.")
    for name, o in outcomes.items():
        if o.status != "ok":
            print(f"{name}: {o.status.upper()} - {o.message.splitlines()[0]}")
    print("\nTarget checks (informational):")
    for check in report.checks(results, args.concurrency):
        print("  " + check.line())
    reasons = [
        f"{n}: {o.message.splitlines()[0]}" for n, o in outcomes.items() if o.status == "failed"
    ]
    for name, o in outcomes.items():
        if o.state.verification_failures:
            n = len(o.state.verification_failures)
            print(f"\n!!! BYTE VERIFICATION FAILED on {name}: {n} object(s)")
            for msg in o.state.verification_failures[:10]:
                print(f"!!!   {msg}")
            reasons.append(f"{name}: {n} verification failure(s)")
    return reasons


def json_document(
    outcomes: dict[str, TargetOutcome],
    settings: Settings,
    args: argparse.Namespace,
    client_cpu: int | None,
) -> dict[str, Any]:
    results = {n: o.state.results for n, o in outcomes.items()}
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "client_pinned_to_cpu": client_cpu,
            "server_cpus": sorted(servers.SERVER_CPUS) if servers.SERVER_CPUS else None,
        },
        "settings": {
            **vars(settings),
            "sizes": args.sizes,
            "concurrency": args.concurrency,
            "seed": args.seed,
        },
        "targets": {n: o.to_json() for n, o in outcomes.items()},
        "checks": [vars(c) for c in report.checks(results, args.concurrency)],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    payload = Payload(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="lakenode-bench-", dir=args.work_dir))
    print(f"data and server logs in {workdir}; settings: {settings}", flush=True)
    client_cpu = None if args.no_pin_client else servers.pin_client()
    where = "every CPU" if client_cpu is None else f"CPU {client_cpu}"
    cpus = sorted(servers.SERVER_CPUS) if servers.SERVER_CPUS else "all"
    print(f"client runs on {where}; servers on CPUs {cpus}", flush=True)
    outcomes: dict[str, TargetOutcome] = {}
    console_rounds: list[console_cost.Round] = []
    try:
        for name in args.targets:
            outcomes[name] = run_target(name, workdir, settings, args, payload)
        if args.console_rounds > 0:
            console_rounds = measure_console_cost(workdir, settings, args, payload)
    finally:
        if not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
    reasons = summarize(outcomes, args)
    if console_rounds:
        console_cost.print_table(console_rounds)
        print("\nConsole checks (informational):")
        for check in console_cost.checks(console_rounds):
            print("  " + check.line())
    document = json_document(outcomes, settings, args, client_cpu)
    document["console"] = {
        "rounds": [row.to_json() for row in console_rounds],
        "checks": [vars(c) for c in console_cost.checks(console_rounds)] if console_rounds else [],
    }
    report.write_json(args.json_out, document)
    print(f"\nJSON results: {args.json_out}")
    if reasons:
        print("\nEXIT 1: " + "; ".join(reasons))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
