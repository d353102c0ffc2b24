"""``lakenode support-bundle --out FILE.tar.gz``: what someone helping needs, and no secret.

The archive holds:

* ``version.txt``: lakenode, Python and platform versions;
* ``config.json``: the running node's configuration (from its admin channel), or, with no
  node running, the ``LAKENODE_*`` environment of this command; every secret, secret key,
  token or password value replaced by "REDACTED";
* ``status.json``: the status document (``lakenode status --json``);
* ``fsck.json``: the report of the ``fsck`` job (node/admin/jobs.py) when this build has one, run
  in process or by the running node; otherwise a note that fsck is unavailable;
* ``logs/``: the last ~5 MiB of the node's log files (``--log-file``), newest first.

It is written under a temporary name (mode 0600) and renamed when complete.
"""

from __future__ import annotations

import io
import json
import os
import platform
import secrets
import sys
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from node.admin.client import AdminError, run_job
from node.admin.jobs import NoProgress, registered
from node.admin.status import gather_status, lakenode_version
from node.config import DEFAULT_LOG_FILE
from node.logfile import log_files
from node.redact import redact

LOG_TAIL_BYTES: Final = 5 << 20
ENV_PREFIX: Final = "LAKENODE_"


async def write_bundle(data_dir: Path, out: Path) -> list[str]:
    """Write the bundle to ``out``; return the names of its members."""
    status = await gather_status(data_dir)
    config = status.pop("config", None)
    members: dict[str, bytes] = {
        "version.txt": _version_text().encode(),
        "config.json": _json(redact(config if config is not None else _environment_config())),
        "status.json": _json(redact(status)),
        "fsck.json": _json(redact(await _fsck(data_dir))),
    }
    logs = _log_tails(_log_path(data_dir, config))
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            for name, data in members.items():
                _add_bytes(archive, name, data)
            added = [
                name for name, path, start in logs if _add_file_tail(archive, name, path, start)
            ]
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return [*members, *added]


def _version_text() -> str:
    return (
        f"lakenode {lakenode_version()}\n"
        f"python {sys.version.split()[0]}\n"
        f"platform {platform.platform()}\n"
    )


def _environment_config() -> dict[str, Any]:
    return {
        "source": "environment of support-bundle (no node was running)",
        "environment": {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)},
    }


async def _fsck(data_dir: Path) -> dict[str, Any]:
    if "fsck" not in registered():
        return {"unavailable": "this build of lakenode has no fsck job"}
    try:
        return dict(await run_job(data_dir, "fsck", {}, NoProgress()))
    except AdminError as exc:
        return {"error": str(exc)}


def _log_path(data_dir: Path, config: Mapping[str, Any] | None) -> Path | None:
    """The running node's log file, else what LAKENODE_LOG_FILE or the default says."""
    configured = (
        config.get("log_file") if config is not None else os.environ.get("LAKENODE_LOG_FILE")
    )
    if configured == "-":
        return None
    return Path(configured) if configured else data_dir / DEFAULT_LOG_FILE


def _log_tails(path: Path | None) -> list[tuple[str, Path, int]]:
    """(member name, file, first byte) of the newest log files, ~LOG_TAIL_BYTES in all."""
    if path is None:
        return []
    budget = LOG_TAIL_BYTES
    tails = []
    for log_file in log_files(path):
        if budget <= 0:
            break
        try:
            size = log_file.stat().st_size
        except FileNotFoundError:
            continue  # rotated out since it was listed
        start = max(0, size - budget)
        tails.append((f"logs/{log_file.name}", log_file, start))
        budget -= size - start
    return tails


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def _add_file_tail(archive: tarfile.TarFile, name: str, path: Path, start: int) -> bool:
    """The file from ``start`` to its end as it is now (a log keeps growing meanwhile);
    False if it went away (rotated out since it was listed)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return False
    with handle:
        size = os.fstat(handle.fileno()).st_size
        start = min(start, size)  # rotated and replaced by a shorter file since listed
        handle.seek(start)
        info = tarfile.TarInfo(name)
        info.size = size - start
        info.mtime = int(time.time())
        info.mode = 0o600
        archive.addfile(info, handle)
    return True
