"""`lakenode serve` configuration, node identity, internal endpoints and the access log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    NodeProcess,
    free_port,
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKENODE_")}
    env.update(extra)
    return env


def run_serve(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run `python -m node serve ARGS` expecting it to exit on its own."""
    return subprocess.run(
        [sys.executable, "-m", "node", "serve", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], flag: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert flag in lines[0]
    assert "Traceback" not in result.stderr
    assert "usage:" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--listen", "garbage"),
        ("--listen", "127.0.0.1:99999"),
        ("--listen", "127.0.0.1:"),
        ("--max-object-size", "nonsense"),
        ("--max-object-size", "0"),
        ("--max-object-size", "5XB"),
        ("--segment-size", "-1"),
        ("--auth", "maybe"),
        ("--sigv2", "maybe"),
        ("--region", "Bad_Region!"),
        ("--node-id", "bad id/with slash"),
        ("--node-id", "x" * 65),
        ("--domain", ".leading.dot"),
        ("--access-key", "has space"),
    ],
)
def test_bad_flag_value_exits_2_with_one_line(tmp_path: Path, flag: str, value: str) -> None:
    result = run_serve(["--data-dir", str(tmp_path / "d"), flag, value])
    line = assert_one_line_error(result, flag)
    assert "error" in line
    assert not (tmp_path / "d").exists()  # nothing was started


@pytest.mark.parametrize(
    ("env_name", "value", "flag"),
    [
        ("LAKENODE_LISTEN", "garbage", "--listen"),
        ("LAKENODE_AUTH", "maybe", "--auth"),
        ("LAKENODE_SIGV2", "2", "--sigv2"),
        ("LAKENODE_MAX_OBJECT_SIZE", "lots", "--max-object-size"),
        ("LAKENODE_REGION", "UPPER", "--region"),
        ("LAKENODE_NODE_ID", "no/slash", "--node-id"),
    ],
)
def test_bad_env_value_exits_2_naming_flag(
    tmp_path: Path, env_name: str, value: str, flag: str
) -> None:
    result = run_serve(["--data-dir", str(tmp_path / "d")], env=clean_env(**{env_name: value}))
    line = assert_one_line_error(result, flag)
    assert env_name in line


def test_unknown_flag_is_one_line(tmp_path: Path) -> None:
    result = run_serve(["--data-dir", str(tmp_path), "--no-such-flag"])
    assert_one_line_error(result, "--no-such-flag")


def test_non_loopback_with_default_credentials_is_refused(tmp_path: Path) -> None:
    port = free_port()
    result = run_serve(["--data-dir", str(tmp_path / "d"), "--listen", f"0.0.0.0:{port}"])
    line = assert_one_line_error(result, "--listen")
    assert "default credentials" in line
    assert "--allow-default-credentials" in line
    # Default credentials given explicitly are still the default credentials.
    explicit = run_serve(
        [
            "--data-dir",
            str(tmp_path / "d"),
            "--listen",
            f"0.0.0.0:{port}",
            "--access-key",
            "lakenode",
            "--secret-key",
            "lakenode-secret",
        ]
    )
    assert_one_line_error(explicit, "--listen")


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "node exited"
        try:
            response = httpx.get(f"{url}/_lakenode/health", timeout=1)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("node did not come up")


def test_allow_default_credentials_starts(tmp_path: Path) -> None:
    port = free_port()
    out = open(tmp_path / "stdout", "wb")  # noqa: SIM115 - handed to the child
    err = open(tmp_path / "stderr", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--listen",
            f"0.0.0.0:{port}",
            "--allow-default-credentials",
        ],
        stdout=out,
        stderr=err,
        env=clean_env(),
    )
    out.close()
    err.close()
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}", process)
        assert health.json() == {"status": "ok"}
        # It really serves with the default credentials.
        url = f"http://127.0.0.1:{port}/"
        signed = sign_headers("GET", url, {}, "lakenode", "lakenode-secret", REGION)
        listed = httpx.get(url, headers=signed)
        assert listed.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    # The access log goes to stdout, one JSON object per line; diagnostics go to stderr.
    logged = [json.loads(line) for line in (tmp_path / "stdout").read_text().splitlines()]
    assert any(
        line["request_id"] == listed.headers["x-amz-request-id"] and line["status"] == 200
        for line in logged
    )
    assert "{" not in (tmp_path / "stderr").read_text()


def test_flag_beats_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKENODE_LISTEN", "garbage")  # the flag's value is used instead
    monkeypatch.setenv("LAKENODE_REGION", "eu-west-1")
    node = NodeProcess(tmp_path / "d", extra_args=["--region", "us-west-2"]).start()
    try:
        signed = sign_headers("GET", f"{node.url}/", {}, ACCESS_KEY, SECRET_KEY, "us-west-2")
        assert httpx.get(f"{node.url}/", headers=signed).status_code == 200
        wrong = sign_headers("GET", f"{node.url}/", {}, ACCESS_KEY, SECRET_KEY, "eu-west-1")
        assert httpx.get(f"{node.url}/", headers=wrong).status_code == 400
    finally:
        node.stop()


def test_env_var_is_used_without_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKENODE_REGION", "eu-west-1")
    node = NodeProcess(tmp_path / "d").start()
    try:
        signed = sign_headers("GET", f"{node.url}/", {}, ACCESS_KEY, SECRET_KEY, "eu-west-1")
        assert httpx.get(f"{node.url}/", headers=signed).status_code == 200
    finally:
        node.stop()


def test_node_id_generated_once_and_persisted(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    node = NodeProcess(data_dir).start()
    try:
        first = httpx.get(f"{node.url}/_lakenode/ready").json()
    finally:
        node.stop()
    assert first["ready"] is True
    node_id = first["node_id"]
    assert node_id
    assert (data_dir / "node_id").read_text().strip() == node_id
    node.start()
    try:
        assert httpx.get(f"{node.url}/_lakenode/ready").json()["node_id"] == node_id
    finally:
        node.stop()
    # Naming the same id explicitly is fine; a different one is refused.
    same = NodeProcess(data_dir, extra_args=["--node-id", node_id]).start()
    same.stop()
    result = run_serve(
        [
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--node-id",
            "other-node",
        ]
    )
    line = assert_one_line_error(result, "--node-id")
    assert "other-node" in line
    assert node_id in line
    assert (data_dir / "node_id").read_text().strip() == node_id


def test_explicit_node_id_on_new_data_dir(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "d", extra_args=["--node-id", "site-a.node-1"]).start()
    try:
        assert httpx.get(f"{node.url}/_lakenode/ready").json()["node_id"] == "site-a.node-1"
    finally:
        node.stop()
    assert (tmp_path / "d" / "node_id").read_text().strip() == "site-a.node-1"


def test_health_and_ready_need_no_auth(node: NodeProcess) -> None:
    health = httpx.get(f"{node.url}/_lakenode/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{node.url}/_lakenode/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


@pytest.mark.parametrize("target", ["/_lakenode/", "/_lakenode/nothing", "/_lakenode/x/y"])
def test_reserved_paths_are_never_buckets(node: NodeProcess, s3: Any, target: str) -> None:
    for method in ("PUT", "GET", "DELETE", "POST"):
        url = f"{node.url}{target}"
        headers = sign_headers(method, url, {}, ACCESS_KEY, SECRET_KEY, REGION)
        response = httpx.request(method, url, headers=headers)
        assert response.status_code in (404, 405), (method, response.status_code)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not any(name.startswith("_lakenode") for name in names)


def test_lakenode_is_not_a_bucket_name(node: NodeProcess) -> None:
    url = f"{node.url}/_lakenode"
    headers = sign_headers("PUT", url, {}, ACCESS_KEY, SECRET_KEY, REGION)
    assert httpx.put(url, headers=headers).status_code == 400


def test_console_script_exists() -> None:
    script = Path(sys.executable).parent / "lakenode"
    assert script.exists()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0
    assert "serve" in result.stdout
    serve_help = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=20
    )
    assert serve_help.returncode == 0
    for flag in ("--listen", "--data-dir", "--max-object-size", "--auth", "--node-id", "--sigv2"):
        assert flag in serve_help.stdout


# --------------------------------------------------------------------------------------
# access log
# --------------------------------------------------------------------------------------

LOG_FIELDS = {
    "time",
    "method",
    "path",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "request_id",
    "access_key",
}


@pytest.fixture(scope="module")
def log_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("log") / "data").start()
    yield process
    process.stop()


def log_lines(node: NodeProcess) -> list[dict[str, Any]]:
    lines = []
    for raw in node.log_path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_one_json_log_line_per_request(log_node: NodeProcess) -> None:
    client = make_client(log_node.url)
    body = b"logged body" * 100
    calls = [
        client.create_bucket(Bucket="logged"),
        client.put_object(Bucket="logged", Key="k", Body=body),
        client.get_object(Bucket="logged", Key="k"),
        client.list_objects_v2(Bucket="logged"),
    ]
    request_ids = [c["ResponseMetadata"]["RequestId"] for c in calls]
    anonymous = httpx.get(f"{log_node.url}/logged/k")
    request_ids.append(anonymous.headers["x-amz-request-id"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = {line.get("request_id"): line for line in log_lines(log_node)}
        if all(rid in lines for rid in request_ids):
            break
        time.sleep(0.05)
    all_lines = log_lines(log_node)
    for rid in request_ids:
        matching = [line for line in all_lines if line.get("request_id") == rid]
        assert len(matching) == 1, rid
        line = matching[0]
        assert set(line) >= LOG_FIELDS
        assert isinstance(line["duration_ms"], int | float)
        assert line["duration_ms"] >= 0
    by_id = {line["request_id"]: line for line in all_lines if line.get("request_id")}
    put_line = by_id[request_ids[1]]
    assert put_line["method"] == "PUT"
    assert put_line["path"] == "/logged/k"
    assert put_line["status"] == 200
    assert put_line["bytes_in"] >= len(body)
    assert put_line["access_key"] == ACCESS_KEY
    get_line = by_id[request_ids[2]]
    assert get_line["bytes_out"] == len(body)
    assert get_line["bytes_in"] == 0
    anon_line = by_id[request_ids[4]]
    assert anon_line["status"] == 403
    assert anon_line["access_key"] is None
    for line in all_lines:
        assert line["time"].endswith(("Z", "+00:00"))


def test_secret_key_never_logged(log_node: NodeProcess) -> None:
    client = make_client(log_node.url)
    client.list_buckets()
    url = f"{log_node.url}/"
    wrong = sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY + "x", REGION)
    assert httpx.get(url, headers=wrong).status_code == 403
    presigned = make_client(log_node.url, signature_version="s3v4").generate_presigned_url(
        "list_buckets"
    )
    assert httpx.get(presigned).status_code == 200
    time.sleep(0.2)
    text = log_node.log_path.read_text()
    assert ACCESS_KEY in text
    assert SECRET_KEY not in text
