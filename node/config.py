"""Node configuration: command-line flags with matching LAKENODE_* environment variables.

A flag wins over its environment variable, which wins over the default. A bad value from
either source ends the program with one line naming the flag and exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from node.tls import TlsFileError, check_server_files, peer_verify
from replication.peer_url import normalize_base_url

DEFAULT_ACCESS_KEY = "lakenode"
DEFAULT_SECRET_KEY = "lakenode-secret"
DEFAULT_LISTEN = "127.0.0.1:9000"
DEFAULT_REGION = "us-east-1"
DEFAULT_LOG_FILE = Path("logs") / "lakenode.log"  # under the data dir
SERVE_RECORD = "serve.json"  # written by a running node: where it listens (and its cert)
GIB = 1 << 30

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path
    host: str
    port: int
    access_key: str
    secret_key: str
    region: str
    auth: bool
    node_id: str | None
    max_object_size: int
    segment_size: int
    domain: str | None
    allow_default_credentials: bool
    peer_access_key: str | None = None
    peer_secret_key: str | None = None
    repl_max_clock_skew: int = 1000  # milliseconds
    repl_tombstone_window: int = 24 * 3_600_000  # milliseconds
    repl_conflict_retention: int = 30 * 86_400_000  # milliseconds
    repl_gc_interval: int = 3_600_000  # milliseconds
    lifecycle_interval: int = 3_600_000  # milliseconds between lifecycle passes
    lifecycle_day_seconds: int | None = None  # tests only: a lifecycle "day" (default 86400)
    peers: tuple[str, ...] = ()
    log_file: str | None = None  # None: DATA/logs/lakenode.log; "-": no log file

    metrics_listen: tuple[str, int] | None = None  # a second address for metrics and probes
    tls_cert: Path | None = None  # with tls_key: serve HTTPS
    tls_key: Path | None = None
    peer_ca: Path | None = None  # CA bundle for https peers (default: the system store)
    sigv2: bool = True  # accept SigV2 signatures (off: AccessDenied naming SigV4)
    workers: int = 1  # processes serving S3 (node/supervisor.py); 1: this process alone
    console: bool = True  # the web console at /_lakenode/console/ (node/console/)

    @property
    def log_path(self) -> Path | None:
        """Where ``serve`` writes its log (besides stderr), None for nowhere."""
        if self.log_file is None:
            return self.data_dir / DEFAULT_LOG_FILE
        return None if self.log_file == "-" else Path(self.log_file)

    @property
    def lifecycle_day_ms(self) -> int:
        return (self.lifecycle_day_seconds or 86_400) * 1000

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    @property
    def peer_credentials(self) -> tuple[str, str]:
        """Credentials for signing requests to peers: the root key unless others are given."""
        if self.peer_access_key is not None and self.peer_secret_key is not None:
            return self.peer_access_key, self.peer_secret_key
        return self.access_key, self.secret_key

    @property
    def uses_default_credentials(self) -> bool:
        return self.access_key == DEFAULT_ACCESS_KEY and self.secret_key == DEFAULT_SECRET_KEY


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; we print just the error line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 5GiB, 100MB, 1048576)")
    value = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_listen(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return host, port


WORKERS_MAX = 256  # storage/workers.py WORKERS_MAX


def default_workers() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    return max(1, min(WORKERS_MAX, len(os.sched_getaffinity(0))))


def parse_workers(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if not 1 <= count <= WORKERS_MAX:
        raise argparse.ArgumentTypeError(f"expected 1 to {WORKERS_MAX}, got {count}")
    return count


def parse_on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("on", "true", "1", "yes"):
        return True
    if lowered in ("off", "false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def parse_region(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]{1,32}", text):
        raise argparse.ArgumentTypeError(f"invalid region {text!r}")
    return text


def parse_domain(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", text) or text.startswith("."):
        raise argparse.ArgumentTypeError(f"invalid domain {text!r}")
    return text.lower()


def parse_node_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise argparse.ArgumentTypeError(f"invalid node id {text!r}: use 1-64 of [A-Za-z0-9._-]")
    return text


def parse_duration_ms(text: str) -> int:
    """A duration as milliseconds: ``500ms``, ``2s``, ``1.5`` (seconds), ``1m``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 500ms, 2s, 1.5)")
    scale = {"ms": 1, "s": 1000, "m": 60_000, None: 1000}[match.group(2)]
    value = round(float(match.group(1)) * scale)
    if not 0 < value <= 86_400_000:
        raise argparse.ArgumentTypeError(f"duration must be from 1ms to 1 day: {text!r}")
    return value


_PERIOD_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
PERIOD_MAX_MS = 3650 * 86_400_000


def parse_period_ms(text: str) -> int:
    """A period as milliseconds, zero allowed: ``0``, ``90s``, ``30m``, ``24h``, ``7d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h|d)?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid period {text!r} (e.g. 30s, 15m, 24h, 7d)")
    value = round(float(match.group(1)) * _PERIOD_UNITS[match.group(2) or "s"])
    if value > PERIOD_MAX_MS:
        raise argparse.ArgumentTypeError(f"period must be at most 3650d: {text!r}")
    return value


def parse_positive_period_ms(text: str) -> int:
    value = parse_period_ms(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"period must be more than 0: {text!r}")
    return value


def parse_day_seconds(text: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) <= 86_400:
        raise argparse.ArgumentTypeError(f"expected whole seconds from 1 to 86400, got {text!r}")
    return int(text)


def parse_peer_url(text: str) -> str:
    try:
        return normalize_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def parse_key(text: str) -> str:
    if not text or len(text) > 128 or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("must be 1-128 characters without spaces")
    return text


def parse_log_file(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, or - for no log file")
    return text


# (flag, environment variable, parser, default, help)
SERVE_OPTIONS: tuple[tuple[str, str | None, object, str | None, str], ...] = (
    ("--data-dir", "LAKENODE_DATA_DIR", Path, "./data", "data directory"),
    ("--listen", "LAKENODE_LISTEN", parse_listen, DEFAULT_LISTEN, "HOST:PORT to serve S3 on"),
    ("--access-key", "LAKENODE_ACCESS_KEY", parse_key, DEFAULT_ACCESS_KEY, "root access key"),
    ("--secret-key", "LAKENODE_SECRET_KEY", parse_key, DEFAULT_SECRET_KEY, "root secret key"),
    ("--region", "LAKENODE_REGION", parse_region, DEFAULT_REGION, "region for SigV4 scopes"),
    ("--auth", "LAKENODE_AUTH", parse_on_off, "on", "on|off: off is for local development"),
    ("--sigv2", "LAKENODE_SIGV2", parse_on_off, "on",
     "on|off: accept AWS Signature Version 2 (boto3's default presigned URLs)"),
    ("--node-id", "LAKENODE_NODE_ID", parse_node_id, None, "node id (default: generated once)"),
    ("--max-object-size", "LAKENODE_MAX_OBJECT_SIZE", parse_size, "5GiB", "largest object"),
    ("--segment-size", "LAKENODE_SEGMENT_SIZE", parse_size, "1GiB", "segment rotation size"),
    ("--domain", "LAKENODE_DOMAIN", parse_domain, None, "base domain for virtual-hosted style"),
    ("--peer-access-key", "LAKENODE_PEER_ACCESS_KEY", parse_key, None,
     "access key to sign requests to peers (default: the root key)"),
    ("--peer-secret-key", "LAKENODE_PEER_SECRET_KEY", parse_key, None,
     "secret key to sign requests to peers (default: the root secret)"),
    ("--repl-max-clock-skew", "LAKENODE_REPL_MAX_CLOCK_SKEW", parse_duration_ms, "1s",
     "refuse replicated changes stamped further ahead of our clock (500ms, 2s, 1.5)"),
    ("--repl-tombstone-window", "LAKENODE_REPL_TOMBSTONE_WINDOW", parse_period_ms, "24h",
     "keep tombstones at least this long after every peer has them (e.g. 24h)"),
    ("--repl-conflict-retention", "LAKENODE_REPL_CONFLICT_RETENTION", parse_period_ms, "30d",
     "keep records of writes that lost under LWW this long (e.g. 30d)"),
    ("--repl-gc-interval", "LAKENODE_REPL_GC_INTERVAL", parse_positive_period_ms, "1h",
     "how often the node runs tombstone GC (e.g. 1h)"),
    ("--lifecycle-interval", "LAKENODE_LIFECYCLE_INTERVAL", parse_positive_period_ms, "1h",
     "how often the lifecycle worker applies the buckets' lifecycle rules (e.g. 1h)"),
    ("--lifecycle-day-seconds", "LAKENODE_LIFECYCLE_DAY_SECONDS", parse_day_seconds, None,
     "for tests only: a lifecycle rule's day lasts this many seconds (default 86400)"),
    ("--log-file", "LAKENODE_LOG_FILE", parse_log_file, None,
     "also log to this file, rotated at 10 MiB x 5 (default DATA/logs/lakenode.log; - for none)"),
    ("--metrics-listen", "LAKENODE_METRICS_LISTEN", parse_listen, None,
     "HOST:PORT to also serve /_lakenode/metrics, health and ready on"),
    ("--tls-cert", "LAKENODE_TLS_CERT", parse_file, None,
     "PEM certificate (chain) to serve HTTPS with; needs --tls-key"),
    ("--tls-key", "LAKENODE_TLS_KEY", parse_file, None, "PEM private key of --tls-cert"),
    ("--peer-ca", "LAKENODE_PEER_CA", parse_file, None,
     "PEM CA certificates to verify https peers with (default: the system store)"),
    ("--console", "LAKENODE_CONSOLE", parse_on_off, "on",
     "serve the web console at /_lakenode/console/ on the S3 port (on|off)"),
    ("--workers", "LAKENODE_WORKERS", parse_workers, None,
     "processes serving S3 over the one data dir (default: the CPUs this process may use; "
     "1: a single process)"),
)  # fmt: skip
PEERS_ENV = "LAKENODE_PEERS"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env, _parse, default, help_text in SERVE_OPTIONS:
        suffix = f" [env {env}]" if env else ""
        shown = f" (default {default})" if default is not None else ""
        parser.add_argument(flag, default=None, help=f"{help_text}{shown}{suffix}")
    add_peer_argument(parser, "pull replicated changes from this peer (repeatable)")
    parser.add_argument(
        "--allow-default-credentials",
        action="store_true",
        help="allow the documented default credentials on a non-loopback address",
    )


def add_data_dir_argument(parser: argparse.ArgumentParser, what: str = "data directory") -> None:
    """``--data-dir`` as every subcommand but serve takes it (serve resolves its own)."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("LAKENODE_DATA_DIR", "./data")),
        help=f"{what} (default ./data) [env LAKENODE_DATA_DIR]",
    )


def add_peer_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--peer",
        action="append",
        default=None,
        metavar="URL",
        help=f"{help_text} [env {PEERS_ENV}, comma-separated]",
    )


def resolve_peers(parser: argparse.ArgumentParser, given: list[str] | None) -> tuple[str, ...]:
    """--peer flags, else LAKENODE_PEERS; validated and without repeats, in order."""
    raw, source = given, "--peer"
    if raw is None:
        raw = [item for item in os.environ.get(PEERS_ENV, "").split(",") if item.strip()]
        source = f"--peer (from {PEERS_ENV})"
    peers: list[str] = []
    for text in raw:
        try:
            url = parse_peer_url(text)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument {source}: {exc}")
        if url not in peers:
            peers.append(url)
    return tuple(peers)


def check_peer_credentials(
    parser: argparse.ArgumentParser, access_key: object, secret_key: object
) -> None:
    if (access_key is None) != (secret_key is None):
        parser.error("argument --peer-access-key/--peer-secret-key: give both or neither")


def resolve_serve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServeConfig:
    values: dict[str, object] = {}
    for flag, env, parse, default, _help in SERVE_OPTIONS:
        name = flag.lstrip("-").replace("-", "_")
        raw, source = getattr(args, name), flag
        if raw is None and env and env in os.environ:
            raw, source = os.environ[env], f"{flag} (from {env})"
        if raw is None:
            raw = default
        if raw is None:
            values[name] = None
            continue
        try:
            values[name] = parse(raw)  # type: ignore[operator]
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"argument {source}: {exc}")
    listen = values.pop("listen")
    assert isinstance(listen, tuple)
    if values["workers"] is None:
        values["workers"] = default_workers()
    host, port = listen
    check_peer_credentials(parser, values["peer_access_key"], values["peer_secret_key"])
    config = ServeConfig(
        host=host,
        port=port,
        allow_default_credentials=args.allow_default_credentials,
        peers=resolve_peers(parser, args.peer),
        **values,  # type: ignore[arg-type]
    )
    check_tls(parser, config)
    stored_id = _stored_node_id(config.data_dir)
    if config.node_id is not None and stored_id is not None and stored_id != config.node_id:
        parser.error(
            f"argument --node-id: data dir {config.data_dir} belongs to node id "
            f"{stored_id!r}, not {config.node_id!r}"
        )
    exposed = not _is_loopback(config.host)
    if config.uses_default_credentials and exposed and not config.allow_default_credentials:
        parser.error(
            f"argument --listen: refusing to serve {config.host} with the default "
            "credentials; set --access-key/--secret-key or pass --allow-default-credentials"
        )
    return config


def check_tls(parser: argparse.ArgumentParser, config: ServeConfig) -> None:
    """Both TLS files or neither, loadable; a usable --peer-ca; two distinct addresses."""
    if (config.tls_cert is None) != (config.tls_key is None):
        parser.error("argument --tls-cert/--tls-key: give both or neither")
    if config.tls_cert is not None and config.tls_key is not None:
        try:
            check_server_files(config.tls_cert, config.tls_key)
        except TlsFileError as exc:
            parser.error(f"argument --tls-cert/--tls-key: {exc}")
    try:
        peer_verify(config.peer_ca)
    except TlsFileError as exc:
        parser.error(f"argument --peer-ca: {exc}")
    if config.metrics_listen == (config.host, config.port):
        parser.error("argument --metrics-listen: must differ from --listen")


def _stored_node_id(data_dir: Path) -> str | None:
    """The id a data dir already belongs to (storage writes it on first start), if any."""
    try:
        return (data_dir / "node_id").read_text().strip() or None
    except OSError:
        return None  # none yet; anything stranger is the store's to report


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
