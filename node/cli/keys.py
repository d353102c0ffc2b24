"""``lakenode keys create|list|show|disable|enable|delete``: manage access keys.

Works on a stopped data dir and beside a running node: both open the same SQLite catalog
(WAL; the busy timeout serialises writers) and the node picks changes up within a second.
A secret is printed once, by ``create``, and never again.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from node.config import add_data_dir_argument
from node.key_rules import BadKeyRequest, new_access_key
from storage import keys
from storage.database import secure_files
from storage.schema import PRAGMAS, migrate


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    # Each action takes --data-dir and --json itself, so they follow the action as the
    # documented usage writes it (`lakenode keys create --data-dir D`).
    common = argparse.ArgumentParser(add_help=False)
    add_data_dir_argument(common)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    create = actions.add_parser(
        "create", parents=[common], help="create a key (generated unless given)"
    )
    create.add_argument("--access-key", help="the access key id to use")
    create.add_argument("--secret-key", help="the secret to use")
    create.add_argument("--read-only", action="store_true", help="only read actions")
    create.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="NAME",
        help="limit the key to this bucket (repeatable)",
    )
    create.add_argument(
        "--policy", type=Path, metavar="FILE", help="identity policy (AWS policy JSON) for the key"
    )
    create.add_argument(
        "--replication",
        action="store_true",
        help="allow the replication endpoints (/_lakenode/repl/)",
    )
    actions.add_parser("list", parents=[common], help="list keys (no secrets)")
    for name, text in (
        ("show", "show one key (no secret)"),
        ("disable", "disable a key"),
        ("enable", "enable a key"),
        ("delete", "delete a key"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("access_key", metavar="ACCESS_KEY")


def open_catalog(data_dir: Path) -> sqlite3.Connection:
    """The data dir's catalog, created (with the current schema) on a fresh data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "meta.db"
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    migrate(conn)
    secure_files(path)
    return conn


def _described(key: keys.AccessKey) -> dict[str, object]:
    return {
        "access_key": key.access_key, "status": key.status, "read_only": key.read_only,
        "buckets": list(key.buckets), "policy": json.loads(key.policy) if key.policy else None,
        "replication": key.replication, "created_ms": key.created_ms,
    }  # fmt: skip


def run_keys(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.action != "create" and not (args.data_dir / "meta.db").exists():
        # Only `create` makes a catalog: a mistyped --data-dir must not look like "no keys".
        parser.error(f"argument --data-dir: no lakenode data in {args.data_dir}")
    conn = open_catalog(args.data_dir)
    try:
        return _dispatch(parser, args, conn)
    except keys.KeyError_ as exc:
        sys.stderr.write(f"lakenode keys {args.action}: {exc}\n")
        return 1
    finally:
        conn.close()


def _dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, conn: sqlite3.Connection
) -> int:
    if args.action == "create":
        return _create(parser, args, conn)
    if args.action == "list":
        listed = [_described(key) for key in keys.list_keys(conn)]
        if args.json:
            print(json.dumps(listed, indent=2))
        else:
            for key in keys.list_keys(conn):
                limits = ("read-only " if key.read_only else "") + ",".join(key.buckets)
                limits += " policy" if key.policy else ""
                print(f"{key.access_key}\t{key.status}\t{limits.strip() or 'full'}")
        return 0
    if args.action == "show":
        print(json.dumps(_described(keys.get_key(conn, args.access_key)), indent=2))
        return 0
    if args.action in ("disable", "enable"):
        keys.set_status(conn, args.access_key, "disabled" if args.action == "disable" else "active")
    else:
        keys.delete_key(conn, args.access_key)
    print(f"{args.access_key}: {args.action}d")
    return 0


def _create(
    parser: argparse.ArgumentParser, args: argparse.Namespace, conn: sqlite3.Connection
) -> int:
    if (args.access_key is None) != (args.secret_key is None):
        parser.error("argument --access-key/--secret-key: give both or neither")
    policy = None
    if args.policy is not None:
        try:
            policy = args.policy.read_text()
        except OSError as exc:
            parser.error(f"argument --policy: cannot read {args.policy}: {exc.strerror}")
    try:
        wanted = new_access_key(
            args.access_key,
            args.secret_key,
            read_only=args.read_only,
            buckets=args.bucket,
            policy=policy,
            replication=args.replication,
        )
    except BadKeyRequest as exc:
        parser.error(f"argument --{exc.field}: {exc}")
    created = keys.create_key(conn, wanted)
    secret = wanted.secret_key
    if args.json:
        print(json.dumps({**_described(created), "secret_key": secret}, indent=2))
    else:
        print(f"access key: {created.access_key}\nsecret key: {secret}")
    return 0
