"""``lakenode repl bootstrap`` between real nodes (acceptance 3).

Method: sites A and B replicate both ways and keep writing (a bounded background thread of
puts and deletes on each) while a third site C, a stopped data dir, bootstraps from A in small
pages. The first bootstrap is SIGKILLed after a few pages; the second resumes (it starts past
page 1 and runs fewer pages than the whole copy) and completes. C is then started pulling
from A and B; once the writers stop, all three must agree: ``lakenode repl validate`` from C
against A and against B exits 0, and every bucket's versions and ETags are equal everywhere.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess, two_way_pair

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEED_OBJECTS = 300
PAGE_SIZE = 10
WRITES_PER_SITE = 400
CONVERGE_LIMIT_S = 30.0
PAGE_LINE = re.compile(r"^bootstrap node-a: page (\d+), ")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a, b = two_way_pair(tmp_path_factory.mktemp("bootstrap"))
    yield a, b
    b.stop()
    a.stop()


def bootstrap_command(data_dir: Path, source: str) -> list[str]:
    return [
        sys.executable, "-m", "node", "repl", "bootstrap", "--from", source,
        "--data-dir", str(data_dir), "--node-id", "node-c", "--page-size", str(PAGE_SIZE),
        "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY,
    ]  # fmt: skip


def validate(data_dir: Path, peer: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "node", "repl", "validate", "--peer", peer,
        "--data-dir", str(data_dir), "--peer-access-key", ACCESS_KEY,
        "--peer-secret-key", SECRET_KEY,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


def state(s3: Any) -> dict[str, Any]:
    """Every bucket's versioning and versions (ids, ETags, sizes, latest, markers)."""
    result: dict[str, Any] = {}
    for bucket in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
        listing = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
        assert not listing.get("IsTruncated"), "test data exceeds one listing page"
        result[bucket] = (
            s3.get_bucket_versioning(Bucket=bucket).get("Status"),
            sorted(
                (v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"])
                for v in listing.get("Versions", [])
            ),
            sorted(
                (m["Key"], m["VersionId"], m["IsLatest"]) for m in listing.get("DeleteMarkers", [])
            ),
        )
    return result


def writer(s3: Any, site: str, stop: threading.Event, errors: list[BaseException]) -> None:
    """Puts and deletes on ``live`` until stopped (at most WRITES_PER_SITE operations)."""
    try:
        for i in range(WRITES_PER_SITE):
            if stop.is_set():
                return
            key = f"{site}-{i % 25}"
            if i % 7 == 6:
                s3.delete_object(Bucket="live", Key=key)
            else:
                s3.put_object(Bucket="live", Key=key, Body=f"{site} write {i}".encode())
            time.sleep(0.01)
    except (BotoCoreError, ClientError) as exc:
        errors.append(exc)


def test_bootstrap_while_both_sites_write_resumes_after_a_kill_and_converges(
    sites: tuple[NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    a, b = sites
    s3a, s3b = make_client(a.url), make_client(b.url)
    s3a.create_bucket(Bucket="seed")
    for i in range(SEED_OBJECTS):
        s3a.put_object(Bucket="seed", Key=f"obj-{i:04}", Body=f"seed {i}".encode() * 10)
    s3a.create_bucket(Bucket="versioned")
    s3a.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    first = s3a.put_object(Bucket="versioned", Key="doc", Body=b"v1")["VersionId"]
    s3a.put_object(Bucket="versioned", Key="doc", Body=b"v2")
    s3a.delete_object(Bucket="versioned", Key="doc")
    s3a.delete_object(Bucket="versioned", Key="doc", VersionId=first)
    s3a.put_object_tagging(
        Bucket="seed", Key="obj-0001", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    s3b.create_bucket(Bucket="from-b")
    s3b.put_object(Bucket="from-b", Key="x", Body=b"written on b")
    s3a.create_bucket(Bucket="live")
    deadline = time.monotonic() + CONVERGE_LIMIT_S
    while "live" not in state(s3b) or "from-b" not in state(s3a):
        assert time.monotonic() < deadline, "A and B did not replicate"
        time.sleep(0.1)

    stop = threading.Event()
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=writer, args=(s3, name, stop, errors), daemon=True)
        for s3, name in ((s3a, "a"), (s3b, "b"))
    ]
    for thread in writers:
        thread.start()
    c = NodeProcess(tmp_path / "c", extra_args=["--node-id", "node-c", "--peer", a.url,
                                                 "--peer", b.url])  # fmt: skip
    try:
        # First run: killed (SIGKILL, as in a crash) after a few pages.
        with subprocess.Popen(
            bootstrap_command(c.data_dir, a.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        ) as first_run:
            assert first_run.stdout is not None
            pages_before_kill = 0
            for line in first_run.stdout:
                if PAGE_LINE.match(line):
                    pages_before_kill += 1
                if pages_before_kill == 3:
                    break
            first_run.send_signal(signal.SIGKILL)
            first_run.wait(timeout=10)
        assert pages_before_kill == 3
        # A half-copied site refuses to serve until its bootstrap is finished.
        refused = subprocess.run(c.command(), capture_output=True, text=True, timeout=30)
        assert refused.returncode == 1
        assert "bootstrap" in refused.stderr and "unfinished" in refused.stderr

        # Second run: resumes and completes.
        second = subprocess.run(
            bootstrap_command(c.data_dir, a.url),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert second.returncode == 0, second.stderr
        numbers = [int(m.group(1)) for m in map(PAGE_LINE.match, second.stdout.splitlines()) if m]
        assert numbers and numbers[0] > 3, second.stdout  # continued after the pages applied
        assert len(numbers) < numbers[-1], second.stdout  # fewer pages than the whole copy
        assert numbers[-1] > SEED_OBJECTS // PAGE_SIZE
        assert "(resumed)" in second.stdout and "caught up" in second.stdout, second.stdout

        # A refused re-bootstrap into a site holding data from elsewhere is checked in unit
        # tests; here: running it again only catches up.
        again = subprocess.run(
            bootstrap_command(c.data_dir, a.url),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert again.returncode == 0 and "already bootstrapped" in again.stdout, again.stdout

        c.start()
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
        assert not errors, errors
        s3c = make_client(c.url)
        deadline = time.monotonic() + CONVERGE_LIMIT_S
        while True:
            views = [state(s3) for s3 in (s3a, s3b, s3c)]
            if views[0] == views[1] == views[2]:
                break
            assert time.monotonic() < deadline, "sites did not converge"
            time.sleep(0.3)
        assert len(views[0]["seed"][1]) == SEED_OBJECTS
        assert set(views[0]) == {"seed", "versioned", "from-b", "live"}
        for peer in (a.url, b.url):
            checked = validate(c.data_dir, peer)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        tags = s3c.get_object_tagging(Bucket="seed", Key="obj-0001")["TagSet"]
        assert tags == [{"Key": "k", "Value": "v"}]
        assert s3c.get_object(Bucket="from-b", Key="x")["Body"].read() == b"written on b"
    finally:
        stop.set()
        c.stop()
