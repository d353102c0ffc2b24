"""The admin channel, maintenance mode, ``lakenode status`` and ``support-bundle``.

Method: real node processes (with the example jobs of tests/integration/admin_jobs.py
registered), the real ``lakenode`` command line, boto3 with retries disabled, and raw
requests on the admin socket. Timing claims (maintenance waits for a write in flight) are
checked on the clocks of both sides, not assumed.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from node.admin.client import AdminError, run_job
from tests.integration import admin_jobs
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess, two_way_pair
from tests.integration.s3util import error_headers, error_of, send

REPO = Path(__file__).resolve().parents[2]
LIMIT_S = 20.0
MiB = 1 << 20


class JobsNode(NodeProcess):
    """``lakenode serve`` with the example jobs registered (tests/integration/admin_jobs.py)."""

    def command(self) -> list[str]:
        command = super().command()
        return [sys.executable, "-m", "tests.integration.admin_jobs", *command[3:]]

    def start_in_maintenance(self) -> JobsNode:
        """Start without waiting for /ready (503 in maintenance): health and admin socket."""
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        wait_for(lambda: self._serving(), "the node serving health and its admin socket")
        return self

    def _serving(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            healthy = httpx.get(f"{self.url}/_lakenode/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False
        return healthy and (self.data_dir / "admin.sock").exists()


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Node processes import tests.integration.admin_jobs: run from the repository."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[JobsNode]:
    process = JobsNode(tmp_path / "data")
    process.start()
    yield process
    process.stop()


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {LIMIT_S} s"
        time.sleep(0.05)


def lakenode(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def cli_json(*args: str) -> dict[str, Any]:
    done = lakenode(*args, "--json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def admin_request(
    data_dir: Path, method: str, path: str, token: str | None, body: Any = None
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.HTTPTransport(uds=str(data_dir / "admin.sock"))
    with httpx.Client(transport=transport, base_url="http://admin", timeout=10) as client:
        return client.request(method, path, headers=headers, json=body)


def admin_get(data_dir: Path, path: str, token: str | None) -> httpx.Response:
    return admin_request(data_dir, "GET", path, token)


def admin_state(node: NodeProcess) -> dict[str, Any]:
    """Maintenance as the node's admin channel reports it (quicker than the CLI)."""
    token = (node.data_dir / "admin.token").read_text().strip()
    answer = admin_get(node.data_dir, "/admin/maintenance", token)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def no_retries(node: NodeProcess) -> Any:
    return make_client(node.url, retries={"total_max_attempts": 1, "mode": "standard"})


class Recorder:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.figures: list[tuple[int, int | None, str]] = []
        self.notes: list[str] = []

    def advance(self, done: int, total: int | None, unit: str) -> None:
        self.figures.append((done, total, unit))

    def note(self, message: str) -> None:
        self.notes.append(message)


def job(data_dir: Path, name: str, **params: Any) -> tuple[dict[str, Any], Recorder]:
    recorder = Recorder()
    report = asyncio.run(run_job(data_dir, name, params, recorder))
    return report, recorder


# ---- the channel --------------------------------------------------------------------------------


def test_socket_and_token_are_private_and_the_token_is_required(node: JobsNode) -> None:
    sock, token_file = node.data_dir / "admin.sock", node.data_dir / "admin.token"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0  # 32 random bytes, hex

    for wrong in (None, "0" * 64, token[:-1], f"{token}x"):
        refused = admin_get(node.data_dir, "/admin/status", wrong)
        assert refused.status_code == 401 and "token" in refused.json()["error"], refused.text
    answer = admin_get(node.data_dir, "/admin/status", token)
    assert answer.status_code == 200 and answer.json()["running"] is True

    node.kill()  # a crash leaves the socket behind: the next start must replace it
    assert sock.exists()
    node.start()
    new_token = token_file.read_text().strip()
    assert new_token != token  # a new token at every start
    assert admin_get(node.data_dir, "/admin/status", token).status_code == 401
    assert admin_get(node.data_dir, "/admin/status", new_token).status_code == 200
    node.stop()
    assert not sock.exists() and not token_file.exists()  # removed at shutdown

    # A stale token with no node: run_job opens the store itself; status says not running.
    assert cli_json("status", "--data-dir", str(node.data_dir))["running"] is False


def test_a_locked_data_dir_without_a_channel_is_one_clear_line(node: JobsNode) -> None:
    (node.data_dir / "admin.token").unlink()  # the node holds the lock; its token is gone
    done = lakenode("status", "--data-dir", str(node.data_dir))
    assert done.returncode == 1, done.stdout
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"a node holds {node.data_dir} but its admin channel is not answering" in done.stderr


# ---- maintenance --------------------------------------------------------------------------------


def test_maintenance_refuses_writes_serves_reads_and_survives_a_restart(node: JobsNode) -> None:
    s3 = no_retries(node)
    s3.create_bucket(Bucket="maint")
    s3.put_object(Bucket="maint", Key="before", Body=b"written before")
    data = str(node.data_dir)

    enabled = lakenode("maintenance", "enable", "--data-dir", data)
    assert enabled.returncode == 0 and "ON" in enabled.stdout, enabled.stderr
    assert_writes_refused_reads_served(node, s3)
    assert cli_json("status", "--data-dir", data)["maintenance"] is True

    node.stop()
    node.start_in_maintenance()  # the flag is on disk
    assert_writes_refused_reads_served(node, s3)
    state = cli_json("maintenance", "status", "--data-dir", data)
    assert state["enabled"] is True and state["running"] is True

    disabled = lakenode("maintenance", "disable", "--data-dir", data)
    assert disabled.returncode == 0 and "off" in disabled.stdout, disabled.stderr
    s3.put_object(Bucket="maint", Key="after", Body=b"written after")
    assert s3.get_object(Bucket="maint", Key="after")["Body"].read() == b"written after"
    assert httpx.get(f"{node.url}/_lakenode/ready", timeout=5).status_code == 200
    assert admin_state(node)["enabled"] is False


def assert_writes_refused_reads_served(node: NodeProcess, s3: Any) -> None:
    for write in (
        lambda: s3.put_object(Bucket="maint", Key="refused", Body=b"x"),
        lambda: s3.delete_object(Bucket="maint", Key="before"),
        lambda: s3.create_multipart_upload(Bucket="maint", Key="mpu"),
        lambda: s3.create_bucket(Bucket="refused"),
    ):
        with pytest.raises(ClientError) as refused:
            write()
        assert error_of(refused) == (503, "SlowDown")
        assert int(error_headers(refused)["retry-after"]) > 0
    assert s3.get_object(Bucket="maint", Key="before")["Body"].read() == b"written before"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="maint")["Contents"]] == ["before"]
    ready = httpx.get(f"{node.url}/_lakenode/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {"ready": False, "reason": "maintenance"}
    assert httpx.get(f"{node.url}/_lakenode/health", timeout=5).status_code == 200
    # Replication writes too (a pushed chunk), with the replication endpoints' JSON error.
    chunk = b"pushed chunk"
    digest = blake3.blake3(chunk).hexdigest()
    pushed = send(node.url, "PUT", f"/_lakenode/repl/chunks/{digest}", body=chunk)
    assert pushed.status_code == 503 and pushed.json()["error"] == "Maintenance", pushed.text


def test_enable_waits_for_the_upload_in_flight(node: JobsNode) -> None:
    make_client(node.url).create_bucket(Bucket="slow")
    s3 = no_retries(node)
    data = str(node.data_dir)
    upload = HeldUpload(node.url, "/slow/big", pieces=16, piece_bytes=MiB // 4)
    upload.start()
    assert upload.holding.wait(10)  # half the body sent; the rest waits for `release`
    assert admin_state(node)["in_flight_writes"] == 1

    too_short = lakenode("maintenance", "enable", "--timeout", "200ms", "--data-dir", data)
    assert too_short.returncode == 1, too_short.stdout
    assert "1 write(s) still in flight" in too_short.stderr and "not enabled" in too_short.stderr
    assert admin_state(node)["writes_paused"] is False  # reopened: writes go on
    s3.put_object(Bucket="slow", Key="meanwhile", Body=b"accepted")

    enabling = subprocess.Popen(
        [sys.executable, "-m", "node", "maintenance", "enable", "--data-dir", data],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: admin_state(node)["writes_paused"], "enable closing the gate")
    with pytest.raises(ClientError) as refused:  # entering maintenance: new writes refused
        s3.put_object(Bucket="slow", Key="late", Body=b"x")
    assert error_of(refused) == (503, "SlowDown")
    time.sleep(0.5)
    assert enabling.poll() is None, enabling.communicate()  # still waiting for the upload
    assert admin_state(node)["enabled"] is False

    released_at = time.monotonic()
    upload.release.set()
    out, err = enabling.communicate(timeout=60)
    enable_returned = time.monotonic()
    assert enabling.returncode == 0 and "ON" in out, err
    upload.join(30)
    assert upload.status == 200, upload.answer
    assert upload.acked_at is not None and released_at < upload.acked_at < enable_returned
    assert admin_state(node)["enabled"] is True
    body = s3.get_object(Bucket="slow", Key="big")["Body"].read()  # reads go on
    assert hashlib.sha256(body).hexdigest() == upload.sha256


def test_maintenance_pauses_the_nodes_own_pulls(tmp_path: Path) -> None:
    a, b = two_way_pair(tmp_path)
    try:
        s3a, s3b = make_client(a.url), make_client(b.url)
        s3b.create_bucket(Bucket="pulled")
        s3b.put_object(Bucket="pulled", Key="before", Body=b"1")
        wait_for(lambda: has_key(s3a, "before"), "a pulling from b")
        assert lakenode("maintenance", "enable", "--data-dir", str(a.data_dir)).returncode == 0
        s3b.put_object(Bucket="pulled", Key="during", Body=b"2")
        time.sleep(1.5)  # pulls run every 0.2 s when idle
        assert not has_key(s3a, "during")
        status = cli_json("status", "--data-dir", str(a.data_dir))
        assert status["maintenance"] is True
        assert [peer["peer"] for peer in status["replication"]] == ["node-b"]
        assert lakenode("maintenance", "disable", "--data-dir", str(a.data_dir)).returncode == 0
        wait_for(lambda: has_key(s3a, "during"), "a pulling again after maintenance")
    finally:
        a.stop()
        b.stop()


def has_key(s3: Any, key: str) -> bool:
    try:
        s3.head_object(Bucket="pulled", Key=key)
    except ClientError as exc:
        if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise
    return True


class HeldUpload(threading.Thread):
    """A signed PUT that sends half its body, then holds until ``release`` is set."""

    def __init__(self, url: str, path: str, pieces: int, piece_bytes: int):
        super().__init__(daemon=True)
        self.url, self.path = url, path
        self.pieces = [os.urandom(piece_bytes) for _ in range(pieces)]
        self.sha256 = hashlib.sha256(b"".join(self.pieces)).hexdigest()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.status: int | None = None
        self.answer = ""
        self.acked_at: float | None = None

    def body(self) -> Iterator[bytes]:
        for number, piece in enumerate(self.pieces):
            if number == len(self.pieces) // 2:
                time.sleep(0.2)  # let the node read what was sent
                self.holding.set()
                self.release.wait(LIMIT_S)
            yield piece

    def run(self) -> None:
        size = sum(len(piece) for piece in self.pieces)
        headers = sign_headers(
            "PUT", f"{self.url}{self.path}", {"content-length": str(size)},
            ACCESS_KEY, SECRET_KEY, REGION, "UNSIGNED-PAYLOAD",
        )  # fmt: skip
        answer = httpx.put(
            f"{self.url}{self.path}", headers=headers, content=self.body(), timeout=60
        )
        self.acked_at = time.monotonic()
        self.status, self.answer = answer.status_code, answer.text


# ---- jobs ---------------------------------------------------------------------------------------


def test_jobs_run_by_the_node_or_in_process_and_quiet_ones_need_maintenance(
    node: JobsNode,
) -> None:
    report, seen = job(node.data_dir, "test-steps", steps=3)
    assert report["pid"] in node.pids() and report["exit_code"] == 0  # run by the node
    assert seen.notes == ["step 1", "step 2", "step 3"]
    assert seen.figures and seen.figures[-1] == (3, 3, "steps")

    with pytest.raises(AdminError) as refused:
        job(node.data_dir, "test-quiet-steps")
    assert str(refused.value) == (
        "test-quiet-steps must not run beside a live writer: run `lakenode maintenance enable` "
        "first, or stop the node"
    )
    with pytest.raises(AdminError, match="failed on the running node: RuntimeError: the example"):
        job(node.data_dir, "test-fail")
    token = (node.data_dir / "admin.token").read_text().strip()
    unknown = admin_request(node.data_dir, "POST", "/admin/jobs/no-such-job", token, {})
    assert unknown.status_code == 404 and "no-such-job" in unknown.json()["error"]

    data = str(node.data_dir)
    assert lakenode("maintenance", "enable", "--data-dir", data).returncode == 0
    release = node.data_dir.parent / "release"
    running = threading.Thread(
        target=job, args=(node.data_dir, "test-quiet-steps"), kwargs={"hold_until": str(release)}
    )
    running.start()
    wait_for(lambda: admin_state(node)["quiet_jobs"] == 1, "the quiet job running")
    refused_disable = lakenode("maintenance", "disable", "--data-dir", data)
    assert refused_disable.returncode == 1 and "running" in refused_disable.stderr
    release.touch()
    running.join(30)
    assert not running.is_alive()
    assert admin_state(node)["quiet_jobs"] == 0
    report, _ = job(node.data_dir, "test-quiet-steps", steps=2)
    assert report["pid"] in node.pids()
    assert lakenode("maintenance", "disable", "--data-dir", data).returncode == 0

    node.stop()  # stopped: the same call opens the store in this process
    report, seen = job(node.data_dir, "test-quiet-steps", steps=2)
    assert report["pid"] == os.getpid() and seen.notes == ["step 1", "step 2"]
    assert admin_jobs.QUIET_STEPS.quiet


# ---- status ---------------------------------------------------------------------------------


def test_status_reports_storage_and_state_running_and_stopped(node: JobsNode) -> None:
    s3 = make_client(node.url)
    s3.create_bucket(Bucket="one")
    s3.create_bucket(Bucket="two")
    s3.put_object(Bucket="one", Key="a", Body=os.urandom(1000))
    s3.put_object(Bucket="one", Key="b", Body=os.urandom(2000))
    s3.put_object(Bucket="two", Key="c", Body=os.urandom(3000))
    s3.put_object(Bucket="one", Key="a", Body=os.urandom(1500))  # replaces the 1000 bytes
    data = str(node.data_dir)

    running = cli_json("status", "--data-dir", data)
    assert running["node_id"] == (node.data_dir / "node_id").read_text().strip()
    assert running["version"] == importlib.metadata.version("lakenode")
    assert running["running"] is True and 0 < running["uptime_s"] < 600
    assert (running["buckets"], running["objects"]) == (2, 3)
    assert running["live_bytes"] == 1500 + 2000 + 3000
    assert running["garbage_bytes"] >= 1000  # the replaced version's chunk
    assert running["segments"] >= 1
    assert running["segment_bytes"] == running["live_bytes"] + running["garbage_bytes"]
    assert running["maintenance"] is False and running["replication"] == []
    assert running["last_scrub"] is None and running["last_gc"] is None
    assert running["config"]["secret_key"] == "REDACTED"

    s3.delete_object(Bucket="two", Key="c")
    token = (node.data_dir / "admin.token").read_text().strip()
    assert admin_get(node.data_dir, "/admin/status", token).json()["objects"] == 2
    human = lakenode("status", "--data-dir", data)
    assert human.returncode == 0 and "running, up" in human.stdout and "objects" in human.stdout

    node.stop()
    scrub = {"started_ms": 1, "finished_ms": 2, "done_ratio": 1.0, "checked_bytes": 6500,
             "checked_chunks": 3, "corrupt_chunks": 0, "corrupt_objects": 0}  # fmt: skip
    with sqlite3.connect(node.data_dir / "meta.db") as conn:  # as ops-tools' scrub writes it
        conn.execute("INSERT INTO meta (name, value) VALUES ('job:scrub', ?)", (json.dumps(scrub),))
    stopped = cli_json("status", "--data-dir", data)
    assert stopped["running"] is False and stopped["uptime_s"] is None
    assert (stopped["buckets"], stopped["objects"], stopped["live_bytes"]) == (2, 2, 3500)
    assert stopped["last_scrub"] == scrub
    human = lakenode("status", "--data-dir", data)
    assert "not running" in human.stdout and "corrupt chunk(s)" in human.stdout
    missing = lakenode("status", "--data-dir", str(node.data_dir.parent / "nothing"))
    assert missing.returncode == 1 and "no lakenode data in" in missing.stderr


# ---- support bundle -------------------------------------------------------------------------


def test_support_bundle_has_what_support_needs_and_no_secret(tmp_path: Path) -> None:
    peer_secret = "peer-secret-0123456789"
    node = JobsNode(tmp_path / "data", extra_args=[
        "--peer-access-key", "peer-key", "--peer-secret-key", peer_secret])  # fmt: skip
    node.start()
    try:
        make_client(node.url).create_bucket(Bucket="bundled")
        token = (node.data_dir / "admin.token").read_text().strip()
        out = tmp_path / "bundle.tar.gz"
        done = lakenode("support-bundle", "--out", str(out), "--data-dir", str(node.data_dir))
        assert done.returncode == 0, done.stderr
        members = bundle_members(out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    finally:
        node.stop()
    assert {"version.txt", "config.json", "status.json", "fsck.json"} <= set(members)
    assert members["version.txt"].startswith(
        b"lakenode " + importlib.metadata.version("lakenode").encode()
    )
    config = json.loads(members["config.json"])
    assert config["secret_key"] == config["peer_secret_key"] == "REDACTED"
    assert config["access_key"] == ACCESS_KEY and config["port"] == node.port
    assert json.loads(members["status.json"])["buckets"] == 1
    fsck = json.loads(members["fsck.json"])
    assert "unavailable" in fsck or "exit_code" in fsck, fsck
    assert b"lakenode serving" in members["logs/lakenode.log"]
    raw = gzip.decompress(out.read_bytes())
    for secret in (SECRET_KEY, peer_secret, token):
        assert secret.encode() not in raw, f"{secret!r} is in the bundle"

    # No node running: the configuration is this command's LAKENODE_* environment, redacted.
    stopped_out = tmp_path / "stopped.tar.gz"
    env = {"LAKENODE_SECRET_KEY": "env-secret-987", "LAKENODE_REGION": "eu-west-1"}
    done = lakenode("support-bundle", "--out", str(stopped_out), "--data-dir", str(node.data_dir),
                    env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    members = bundle_members(stopped_out)
    environment = json.loads(members["config.json"])["environment"]
    assert environment["LAKENODE_SECRET_KEY"] == "REDACTED"
    assert environment["LAKENODE_REGION"] == "eu-west-1"
    assert json.loads(members["status.json"])["running"] is False
    assert b"env-secret-987" not in gzip.decompress(stopped_out.read_bytes())


def bundle_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }
