"""Helpers for driving real S3 client programs (aws, s3cmd, rclone) against a node."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

CLIENT_TIMEOUT_S = 120.0
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
MiB = 1024 * 1024


def venv_tool(name: str) -> str:
    """A client installed in the repo's venv, falling back to one next to the interpreter."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return str(Path(sys.executable).parent / name)


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = CLIENT_TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a client with a fixed environment and timeout; raise with its output on failure."""
    result = subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment: no user config, proxy or credential variables leak in."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "NO_PROXY": "*",
        "no_proxy": "*",
    }


def sha256_file(path: Path, algorithm: str = "sha256") -> str:
    """The file's hex digest (SHA-256 unless ``algorithm`` names another), read in 1 MiB pieces."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> Path:
    """Write ``size`` random bytes to ``path`` in 4 MiB pieces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = min(remaining, 4 * MiB)
            handle.write(os.urandom(piece))
            remaining -= piece
    return path


def make_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    for relative, data in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` as {posix relative path: bytes}."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


SMALL_TREE: dict[str, bytes] = {
    "top.txt": b"top level\n",
    "empty.dat": b"",
    "docs/readme.md": b"# readme\n" * 50,
    "docs/guide/part one.txt": b"spaces in the name\n",
    "docs/guide/deep/leaf.bin": bytes(range(256)) * 40,
    "data/numbers.csv": b"\n".join(str(i).encode() for i in range(1000)),
    "data/ünï cødé+plus=eq&amp;(1).txt": b"non-ASCII and reserved characters\n",
}
