"""The AWS SDK for JavaScript v3 (@aws-sdk/client-s3 from npm) against a real node.

``tests/js/s3_smoke.mjs`` does the work in node (put, stream put, multipart via lib-storage's
``Upload`` and via the low-level commands, presigned GET and PUT over ``fetch``, conditional
PUTs with ``IfNoneMatch: "*"`` and ``IfMatch``, ListObjectsV2, delete), all at the SDK's
default checksum settings;
this test installs its pinned dependencies with ``npm ci``, runs it against the session node,
and checks from boto3 that the objects it reports leaving behind really are there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.clients import MiB, base_env
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
SCRIPT = JS_DIR / "s3_smoke.mjs"
NODE = shutil.which("node")
NPM = shutil.which("npm")

EXPECTED_CHECKS = 10  # one per entry of `checks` in s3_smoke.mjs
NPM_TIMEOUT_S = 300.0
SCRIPT_TIMEOUT_S = 180.0
# Must match s3_smoke.mjs: MULTIPART_SIZE and PART_SIZE.
MULTIPART_SIZE = 12 * MiB + 12345
PART_SIZE = 5 * MiB
MULTIPART_KEYS = ("mpu/lib-storage.bin", "mpu/low-level.bin")
# Registry/network failures, as npm reports them.
_NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "E503")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason=(
        f"Node.js is not installed (node: {NODE or 'not on PATH'}, npm: {NPM or 'not on PATH'}); "
        "the AWS SDK for JavaScript v3 test needs node >= 20 and npm"
    ),
)


def _needs_install() -> bool:
    """node_modules is missing, or older than the lockfile (npm writes its hidden lockfile last)."""
    installed = JS_DIR / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return True
    newest_input = max(
        (JS_DIR / name).stat().st_mtime for name in ("package-lock.json", "package.json")
    )
    return installed.stat().st_mtime < newest_input


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    """tests/js/node_modules, installed from package-lock.json by `npm ci` when stale."""
    assert NPM is not None
    if _needs_install():
        argv = [NPM, "ci", "--no-audit", "--no-fund"]
        started = time.monotonic()
        try:
            result = subprocess.run(
                argv,
                cwd=JS_DIR,
                env={**os.environ, "npm_config_update_notifier": "false"},
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"`npm ci` in {JS_DIR} did not finish within {NPM_TIMEOUT_S:.0f} s; is the npm "
                f"registry reachable?\n--- output ---\n{exc.output}\n{exc.stderr}",
                pytrace=False,
            )
        if result.returncode != 0:
            output = f"{result.stdout}\n{result.stderr}"
            hint = (
                "the npm registry looks unreachable (network error); this test needs it to "
                "install @aws-sdk/client-s3"
                if any(code in output for code in _NETWORK_ERRORS)
                else "see npm's output"
            )
            pytest.fail(
                f"`npm ci` in {JS_DIR} exited {result.returncode} after "
                f"{time.monotonic() - started:.0f} s: {hint}\n--- output ---\n{output[-6000:]}",
                pytrace=False,
            )
    assert (JS_DIR / "node_modules" / "@aws-sdk" / "client-s3").is_dir()
    return JS_DIR / "node_modules"


def _run_smoke(node: NodeProcess, bucket: str, home: Path) -> dict[str, Any]:
    """Run s3_smoke.mjs; return its final JSON summary, failing with its output otherwise."""
    assert NODE is not None
    env = {
        **base_env(home),  # no AWS_* variables or ~/.aws config can change the SDK's behaviour
        "LAKENODE_ENDPOINT": node.url,
        "LAKENODE_ACCESS_KEY": ACCESS_KEY,
        "LAKENODE_SECRET_KEY": SECRET_KEY,
        "LAKENODE_REGION": REGION,
        "LAKENODE_BUCKET": bucket,
    }
    argv = [NODE, str(SCRIPT.relative_to(REPO_ROOT))]
    try:
        result = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{' '.join(argv)} timed out after {SCRIPT_TIMEOUT_S:.0f} s\n--- stdout ---\n"
            f"{exc.stdout}\n--- stderr ---\n{exc.stderr}\n--- node log ---\n{node.log()}",
            pytrace=False,
        )
    report = (
        f"{' '.join(argv)} exited {result.returncode}\n--- stdout ---\n{result.stdout[-8000:]}\n"
        f"--- stderr ---\n{result.stderr[-4000:]}"
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        summary = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(
            f"no JSON summary line\n{report}\n--- node log ---\n{node.log()}", pytrace=False
        )
    if result.returncode != 0 or summary.get("ok") is not True:
        pytest.fail(f"{report}\n--- node log ---\n{node.log()}", pytrace=False)
    assert summary["checks"] == EXPECTED_CHECKS, report
    assert summary["failed"] == [], report
    assert sum(line.startswith("PASS ") for line in lines) == EXPECTED_CHECKS, report
    return dict(summary)


def _multipart_etag(data: bytes, part_size: int) -> str:
    digests = [
        hashlib.md5(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    ]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def test_aws_sdk_js_v3_smoke(
    js_sdk: Path, node: NodeProcess, s3: Any, bucket: str, tmp_path: Path
) -> None:
    summary = _run_smoke(node, bucket, tmp_path / "home")
    objects = summary["objects"]

    # What the script reports leaving behind is exactly what boto3 sees in the bucket.
    listed = s3.list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == sorted(objects)
    assert not any(key.startswith("list") for key in objects)  # deleted by the script

    for key in MULTIPART_KEYS:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == MULTIPART_SIZE == objects[key]["size"]
        assert re.fullmatch(r'"[0-9a-f]{32}-3"', head["ETag"]), head["ETag"]
        assert head["ETag"] == objects[key]["etag"]
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == objects[key]["sha256"]
        # The node cut the object into the 5 MiB parts the SDK sent.
        assert _multipart_etag(data, PART_SIZE) == head["ETag"]

    small = s3.get_object(Bucket=bucket, Key="small/hello.txt")
    assert small["ContentType"] == "text/x-lakenode-js"
    assert small["Metadata"] == {"colour": "blue", "made-by": "s3_smoke.mjs"}
    body = small["Body"].read()
    assert hashlib.sha256(body).hexdigest() == objects["small/hello.txt"]["sha256"]
    assert small["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
