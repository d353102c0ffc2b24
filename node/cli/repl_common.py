"""What the ``lakenode repl`` subcommands share: peer credentials, settings, the running node.

Peer credentials come from flags, else the environment, else the defaults (``lakenode ops``
uses them too, to repair from peers); ``running_node_client`` reaches the node running on a
data dir at the address it recorded (DATA/serve.json); ``fail`` prints a subcommand's one-line
failure.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from node.config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_REGION,
    DEFAULT_SECRET_KEY,
    SERVE_RECORD,
    check_peer_credentials,
    parse_file,
    parse_key,
    parse_region,
)
from node.peers import PEER_TIMEOUT_S, peer_signer
from node.tls import TlsFileError, peer_verify, pinned_context
from replication.client import PeerClient, Signer
from storage.errors import StorageError

T = TypeVar("T")
PEER_CA_ENV = "LAKENODE_PEER_CA"
Verify = ssl.SSLContext | bool  # how https peers are verified (node/tls.py)


def add_peer_credentials(parser: argparse.ArgumentParser) -> None:
    """--peer-access-key, --peer-secret-key, --region, --peer-ca: how to call peers."""
    parser.add_argument(
        "--peer-access-key",
        help="access key for the peers [env LAKENODE_PEER_ACCESS_KEY, else LAKENODE_ACCESS_KEY]",
    )
    parser.add_argument(
        "--peer-secret-key",
        help="secret key for the peers [env LAKENODE_PEER_SECRET_KEY, else LAKENODE_SECRET_KEY]",
    )
    parser.add_argument("--region", help="SigV4 region of the peers [env LAKENODE_REGION]")
    parser.add_argument(
        "--peer-ca",
        metavar="FILE",
        help=f"PEM CA certificates to verify https peers with (default: the system store) "
        f"[env {PEER_CA_ENV}]",
    )


@dataclass(frozen=True)
class PeerCredentials:
    access_key: str
    secret_key: str
    region: str
    peer_ca: Path | None = None  # None: the system store

    def signer(self) -> Signer:
        return peer_signer(self.access_key, self.secret_key, self.region)

    def verify(self) -> Verify:
        return peer_verify(self.peer_ca)


def resolve_peer_credentials(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> PeerCredentials:
    """Flags, else environment (the peer pair, else the root pair), else the defaults; the
    CA file is checked now (exit 2)."""
    check_peer_credentials(parser, args.peer_access_key, args.peer_secret_key)
    access_key = resolve_setting(
        parser,
        args.peer_access_key,
        "--peer-access-key",
        parse_key,
        ("LAKENODE_PEER_ACCESS_KEY", "LAKENODE_ACCESS_KEY"),
        DEFAULT_ACCESS_KEY,
    )
    secret_key = resolve_setting(
        parser,
        args.peer_secret_key,
        "--peer-secret-key",
        parse_key,
        ("LAKENODE_PEER_SECRET_KEY", "LAKENODE_SECRET_KEY"),
        DEFAULT_SECRET_KEY,
    )
    region = resolve_setting(parser, args.region, "--region", parse_region,
                      ("LAKENODE_REGION",), DEFAULT_REGION)  # fmt: skip
    credentials = PeerCredentials(access_key, secret_key, region, _peer_ca(parser, args.peer_ca))
    try:
        credentials.verify()
    except TlsFileError as exc:
        parser.error(f"argument --peer-ca: {exc}")
    return credentials


def _peer_ca(parser: argparse.ArgumentParser, given: str | None) -> Path | None:
    """--peer-ca, else LAKENODE_PEER_CA, else None (the system store)."""
    raw, source = given, "--peer-ca"
    if raw is None and PEER_CA_ENV in os.environ:
        raw, source = os.environ[PEER_CA_ENV], f"--peer-ca (from {PEER_CA_ENV})"
    if raw is None:
        return None
    try:
        return parse_file(raw)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"argument {source}: {exc}")


def resolve_setting(
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


def running_node_client(data_dir: Path, sign: Signer) -> PeerClient:
    """A client for the node running on ``data_dir``, at the address it recorded; over https
    it trusts exactly the certificate the node recorded (node/tls.py)."""
    record = data_dir / SERVE_RECORD
    try:
        document = json.loads(record.read_text())
        url, cert = str(document["url"]), document.get("cert")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{data_dir} is in use but {record} does not say where") from exc
    try:
        verify = True if cert is None else pinned_context(Path(str(cert)))
    except TlsFileError as exc:
        raise StorageError(f"the running node's {exc}") from exc
    return PeerClient(url, sign, PEER_TIMEOUT_S, verify=verify)


def fail(message: str, action: str = "pull") -> None:
    sys.stderr.write(f"lakenode repl {action}: {message}\n")
