"""TLS served by the node itself: S3 over https, local tools pinning the node's certificate,
replication between two https nodes, and clear start-up errors for unusable files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.programs import self_signed_cert
from tests.integration.test_config import assert_one_line_error, run_serve

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path)


def tls_args(cert: Path, key: Path) -> list[str]:
    return ["--tls-cert", str(cert), "--tls-key", str(key), "--peer-ca", str(cert)]


def s3_client(node: NodeProcess) -> Any:
    assert node.ca is not None
    return boto3.client(
        "s3",
        endpoint_url=node.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        verify=str(node.ca),
    )


def repl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "node", "repl", *args,
        "--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_s3_over_https_and_local_tools_pin_the_certificate(
    tmp_path: Path, cert_pair: tuple[Path, Path]
) -> None:
    cert, key = cert_pair
    node = NodeProcess(tmp_path / "data", extra_args=tls_args(cert, key), ca=cert).start()
    try:
        assert node.url.startswith("https://")
        s3 = s3_client(node)
        s3.create_bucket(Bucket="secure")
        s3.put_object(Bucket="secure", Key="k", Body=b"over tls" * 1000)
        assert s3.get_object(Bucket="secure", Key="k")["Body"].read() == b"over tls" * 1000

        with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port: no answer
            httpx.get(f"http://127.0.0.1:{node.port}/_lakenode/health", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{node.url}/_lakenode/health", timeout=5)  # not trusted by default

        record = json.loads((node.data_dir / "serve.json").read_text())
        assert record == {"url": node.url, "cert": str(cert.resolve())}
        status = repl("status", "--data-dir", str(node.data_dir), "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["peers"] == []
        # boto3 keeps its connection open and idle: stopping must not wait for its TLS close.
        started = time.monotonic()
        node.stop()
        assert node.process is not None and node.process.returncode == -15
        assert time.monotonic() - started < 5
    finally:
        node.stop()


def wait_for_object(s3: Any, bucket: str, key: str, body: bytes) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body:
                return
        except ClientError:
            pass
        assert time.monotonic() < deadline, f"{bucket}/{key} did not replicate"
        time.sleep(0.1)


def test_two_nodes_replicate_over_https(tmp_path: Path, cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    a = NodeProcess(tmp_path / "a", ca=cert)
    b = NodeProcess(tmp_path / "b", ca=cert)
    a.extra_args = ["--node-id", "node-a", "--peer", b.url, *tls_args(cert, key)]
    b.extra_args = ["--node-id", "node-b", "--peer", a.url, *tls_args(cert, key)]
    a.start()
    b.start()
    try:
        s3_a, s3_b = s3_client(a), s3_client(b)
        s3_a.create_bucket(Bucket="both")
        s3_a.put_object(Bucket="both", Key="from-a", Body=b"A" * 5000)
        wait_for_object(s3_b, "both", "from-a", b"A" * 5000)
        s3_b.put_object(Bucket="both", Key="from-b", Body=b"B" * 7000)
        wait_for_object(s3_a, "both", "from-b", b"B" * 7000)
        # The local node through serve.json (pinned), the peer through --peer-ca.
        validate = repl("validate", "--data-dir", str(a.data_dir), "--peer", b.url,
                        "--peer-ca", str(cert))  # fmt: skip
        assert validate.returncode == 0, validate.stderr
        assert "agree" in validate.stdout
        # Without --peer-ca the peer's self-signed certificate is refused, not skipped.
        untrusted = repl("validate", "--data-dir", str(a.data_dir), "--peer", b.url)
        assert untrusted.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        a.stop()
        b.stop()


def test_unusable_tls_settings_stop_the_node_with_one_line(
    tmp_path: Path, cert_pair: tuple[Path, Path]
) -> None:
    cert, key = cert_pair
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    data = ["--data-dir", str(tmp_path / "data")]
    only_cert = run_serve([*data, "--tls-cert", str(cert)])
    assert "give both or neither" in assert_one_line_error(only_cert, "--tls-cert/--tls-key")
    missing = run_serve([*data, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key)])
    assert "no such file" in assert_one_line_error(missing, "--tls-cert")
    swapped = run_serve([*data, "--tls-cert", str(key), "--tls-key", str(cert)])
    assert "cannot load certificate" in assert_one_line_error(swapped, "--tls-cert/--tls-key")
    bad_key = run_serve([*data, "--tls-cert", str(cert), "--tls-key", str(garbage)])
    assert "cannot load certificate" in assert_one_line_error(bad_key, "--tls-cert/--tls-key")
    bad_ca = run_serve([*data, "--peer-ca", str(garbage)])
    assert "cannot load CA certificates" in assert_one_line_error(bad_ca, "--peer-ca")
    assert not (tmp_path / "data" / "serve.json").exists()
