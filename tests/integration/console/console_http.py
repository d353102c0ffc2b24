"""Plain helpers of the console's tests, over HTTP without a browser: where the console is
served, an httpx client that follows no redirects, a signed-in session, a page's CSRF token,
keys made with ``python -m node keys create``, and a poll for changes that take a moment."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from tests.integration.nodeproc import NodeProcess

REPO: Final = Path(__file__).resolve().parents[3]
PREFIX: Final = "/_lakenode/console/"
CSRF: Final = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def http_client(node: NodeProcess) -> httpx.Client:
    """A cookieless client of the node, as a browser that follows no redirects."""
    return httpx.Client(base_url=node.url, follow_redirects=False, timeout=30)


@contextmanager
def sign_in(node: NodeProcess, access_key: str, secret_key: str) -> Iterator[httpx.Client]:
    """A client signed in to the console (sent on to the overview) as the given key."""
    with http_client(node) as client:
        answer = client.post(
            PREFIX + "signin", data={"access_key": access_key, "secret_key": secret_key}
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == PREFIX
        yield client


def assert_sent_to_sign_in(answer: httpx.Response) -> None:
    assert answer.status_code == 303
    assert answer.headers["location"] == PREFIX + "signin"


def csrf_in(page: str) -> str:
    """The CSRF token of a console page's forms."""
    found = CSRF.search(page)
    assert found is not None
    return found.group(1)


def csrf_of(client: httpx.Client, page: str = "buckets") -> str:
    return csrf_in(client.get(PREFIX + page).text)


def run_node_command(node: NodeProcess, *args: str) -> None:
    """``python -m node ARGS --data-dir DATA`` on the node's data, which must succeed."""
    command = [sys.executable, "-m", "node", *args, "--data-dir", str(node.data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr


def make_key(node: NodeProcess, *args: str) -> tuple[str, str]:
    """A new key of the node (``args``: keys create's options); its access key and secret."""
    access, secret = f"console-{secrets.token_hex(4)}", "s3cr3t-" + secrets.token_urlsafe(18)
    run_node_command(node, "keys", "create", "--access-key", access, "--secret-key", secret, *args)
    return access, secret


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``check`` until it holds (a change may reach a second worker a moment later)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout_s} s for {what}"
        time.sleep(0.2)
