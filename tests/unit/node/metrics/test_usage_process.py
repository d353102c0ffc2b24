"""node/metrics/usage_process.py: a big store's usage comes from a niced child process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.metrics import usage_process
from node.metrics.storage import measure_usage
from storage.ops import usage
from storage.store import Store
from tests.unit.storage.stores import put_object, run_with_store

REPO = Path(__file__).resolve().parents[4]


def test_the_child_reports_what_the_store_itself_measures(tmp_path: Path) -> None:
    async def scenario(store: Store) -> tuple[usage.UsageTotals, usage.UsageTotals]:
        await put_object(store, "b", "one", os.urandom(1000))
        await put_object(store, "b", "two", os.urandom(2000))
        await put_object(store, "b", "one", os.urandom(300))  # replaces: 1000 bytes of garbage
        return await usage.store_usage(store), await usage_process.compute_in_child(tmp_path)

    in_store, in_child = run_with_store(scenario, tmp_path)
    assert in_child == in_store
    assert (in_child.objects, in_child.live_bytes) == (2, 2300)
    assert in_child.garbage_bytes >= 1000


def test_only_a_big_store_is_measured_in_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(store: Store) -> None:
        await put_object(store, "b", "k", os.urandom(5000))

    run_with_store(scenario, tmp_path)
    size = usage_process.catalog_bytes(tmp_path)
    assert size > 4096  # meta.db and its WAL
    assert not usage_process.should_isolate(tmp_path)

    spawned: list[tuple[str, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*argv: str, **kwargs: object) -> asyncio.subprocess.Process:
        spawned.append(argv)
        return await real_exec(*argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    small = asyncio.run(measure_usage(tmp_path))
    assert spawned == []

    monkeypatch.setattr(usage_process, "ISOLATE_FROM_BYTES", size)
    big = asyncio.run(measure_usage(tmp_path))
    assert spawned == [(sys.executable, "-m", "node.metrics.usage_process", str(tmp_path))]
    assert big == small
    assert big.live_bytes == 5000


def test_a_child_that_fails_raises_with_its_last_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(usage_process.UsageProcessFailed, match="exited with 1"):
        asyncio.run(usage_process.compute_in_child(missing))


@pytest.mark.parametrize("out", [b"", b"not json", b'{"segments": 1}', b'{"segments": "x"}'])
def test_output_without_totals_is_an_error(out: bytes) -> None:
    with pytest.raises(usage_process.UsageProcessFailed, match="printed no totals"):
        usage_process.parse_totals(out)


CHILD = """
import os, signal, sys, time
from node.supervisor import die_with_parent
die_with_parent(signal.SIGKILL, int(sys.argv[1]))
print('alive', flush=True)
time.sleep(60)
"""
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())],
                         stdout=subprocess.PIPE)
assert child.stdout.readline() == b"alive\\n"
print(child.pid, flush=True)
sys.stdin.read()  # until the test kills this process
""".replace("import subprocess, sys", "import os, subprocess, sys")


def test_a_child_tied_to_its_parent_dies_with_it() -> None:
    """The mechanism that keeps a usage child from outliving a worker killed with -9."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert _alive(child_pid)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    assert parent.stdin is not None
    parent.stdin.close()
    deadline = time.monotonic() + 10
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "1"], capture_output=True, timeout=30, cwd=REPO
    )
    assert (done.returncode, done.stdout) == (1, b"")


def _alive(pid: int) -> bool:
    """Running and not a zombie (a dead child of init is reaped at once; of us, not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
