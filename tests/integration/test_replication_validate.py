"""`lakenode repl validate` between real nodes: agreement, named differences, exit codes.

Method: B pulls from A (one way). After B converges the sites agree; a write made only on B
(A does not pull) must be reported by name. Validate runs beside the running node (through
its recorded address) and on a stopped data dir (reading the store directly).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

CONVERGE_LIMIT_S = 20.0


@pytest.fixture
def one_way(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a = NodeProcess(tmp_path / "a", extra_args=["--node-id", "site-a"]).start()
    b = NodeProcess(tmp_path / "b", extra_args=["--node-id", "site-b", "--peer", a.url]).start()
    yield a, b
    b.stop()
    a.stop()


def validate(data_dir: Path, peer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", "repl", "validate", "--data-dir", str(data_dir),
         "--peer", peer, "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def wait_until_agree(data_dir: Path, peer: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + CONVERGE_LIMIT_S
    while True:
        result = validate(data_dir, peer)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_validate_reports_agreement_and_each_difference(
    one_way: tuple[NodeProcess, NodeProcess],
) -> None:
    a, b = one_way
    on_a, on_b = make_client(a.url), make_client(b.url)
    on_a.create_bucket(Bucket="shared")
    for index in range(50):
        on_a.put_object(Bucket="shared", Key=f"k{index}", Body=str(index).encode())
    on_a.delete_object(Bucket="shared", Key="k3")
    agreed = wait_until_agree(b.data_dir, a.url)
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert f"validate {a.url}: agree" in agreed.stdout

    on_b.put_object(Bucket="shared", Key="only-on-b", Body=b"x")  # A never pulls from B
    on_b.put_object(Bucket="shared", Key="k1", Body=b"changed on b")
    differs = validate(b.data_dir, a.url)
    assert differs.returncode == 1
    lines = [line.split("\t") for line in differs.stdout.splitlines() if "\t" in line]
    assert [(bucket, key) for bucket, key, *_ in lines] == [
        ("shared", "k1"),
        ("shared", "only-on-b"),
    ]
    assert lines[1][3] == "peer=absent"
    assert "2 difference(s)" in differs.stdout

    b.stop()  # a stopped data dir is read directly
    stopped = validate(b.data_dir, a.url)
    assert stopped.returncode == 1
    assert "2 difference(s)" in stopped.stdout


def test_validate_fails_clearly_when_the_peer_is_unreachable(
    one_way: tuple[NodeProcess, NodeProcess],
) -> None:
    _a, b = one_way
    result = validate(b.data_dir, "http://127.0.0.1:9")  # nothing listens on the discard port
    assert result.returncode == 1
    assert "lakenode repl validate:" in result.stderr


def test_the_serving_node_records_how_far_a_peer_has_applied(
    one_way: tuple[NodeProcess, NodeProcess],
) -> None:
    """The base of lag, backlog and tombstone GC: A knows, on disk, what B has applied."""
    a, b = one_way
    on_a = make_client(a.url)
    on_a.create_bucket(Bucket="acks")
    for index in range(5):
        on_a.put_object(Bucket="acks", Key=f"k{index}", Body=b"x")
    assert wait_until_agree(b.data_dir, a.url).returncode == 0

    def acknowledged() -> tuple[int, int]:
        with sqlite3.connect(f"file:{a.data_dir / 'meta.db'}?mode=ro", uri=True) as conn:
            (last,) = conn.execute("SELECT max(seq) FROM changes").fetchone()
            row = conn.execute(
                "SELECT seq FROM peer_cursors WHERE peer = 'site-b' AND direction = 'acked'"
            ).fetchone()
        return (row[0] if row else 0), last

    deadline = time.monotonic() + CONVERGE_LIMIT_S
    while acknowledged()[0] < acknowledged()[1] and time.monotonic() < deadline:
        time.sleep(0.2)
    acked, last = acknowledged()
    assert acked == last > 0
