"""The web console's first pages over plain HTTP (node/console/, docs/console.md): sign-in,
sessions, CSRF, throttling, access decided by S3 itself, escaping, and where it is served."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.console.console_http import (
    PREFIX,
    assert_sent_to_sign_in,
    csrf_of,
    eventually,
    http_client,
    make_key,
    run_node_command,
    sign_in,
)
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess, free_port


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    metrics_port = free_port()
    process = NodeProcess(
        tmp_path_factory.mktemp("console") / "data",
        extra_args=["--metrics-listen", f"127.0.0.1:{metrics_port}"],
    )
    process.env["TEST_METRICS_PORT"] = str(metrics_port)
    yield process.start()
    process.stop()


def test_without_a_session_every_page_leads_to_sign_in(node: NodeProcess) -> None:
    with http_client(node) as client:
        for path in ("", "buckets"):
            assert_sent_to_sign_in(client.get(PREFIX + path))
        page = client.get(PREFIX + "signin")
        assert page.status_code == 200
        assert 'name="secret_key" type="password"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        forged = client.post(PREFIX + "buckets", data={"action": "create", "name": "nope-x"})
        assert_sent_to_sign_in(forged)  # nothing created


def test_sign_in_sets_a_strict_http_only_cookie_and_shows_the_node(node: NodeProcess) -> None:
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        cookie = client.cookies.jar
        (only,) = list(cookie)
        assert only.name == "lakenode_console"
        assert only.path == PREFIX
        assert only.has_nonstandard_attr("HttpOnly")
        assert only.get_nonstandard_attr("SameSite").lower() == "strict"
        assert SECRET_KEY not in (only.value or "")
        overview = client.get(PREFIX)
        assert overview.status_code == 200
        assert ACCESS_KEY in overview.text  # who is signed in
        assert (node.data_dir / "console.key").stat().st_mode & 0o077 == 0


def test_wrong_secrets_are_refused_then_slowed(tmp_path: Path) -> None:
    # A node of its own: the throttle also slows this client's address, as it should. Two
    # workers: every console request is answered by the primary, so the count is the node's.
    node = NodeProcess(tmp_path / "data", extra_args=["--workers", "2"]).start()
    try:
        _refused_then_slowed(node)
    finally:
        node.stop()


def _refused_then_slowed(node: NodeProcess) -> None:
    access, _ = make_key(node)
    statuses = []
    for _ in range(7):
        with http_client(node) as client:  # a new connection each time: it may reach either worker
            statuses.append(
                client.post(PREFIX + "signin", data={"access_key": access, "secret_key": "guess"})
            )
    codes = [answer.status_code for answer in statuses]
    assert codes[:5] == [401] * 5  # free failures, each refused
    assert 429 in codes[5:]  # then each attempt must wait
    slowed = next(answer for answer in statuses if answer.status_code == 429)
    assert int(slowed.headers["retry-after"]) >= 1
    assert "guess" not in slowed.text


def test_creating_and_deleting_a_bucket_needs_the_csrf_token(node: NodeProcess) -> None:
    name = f"console-{secrets.token_hex(4)}"
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        for token in (None, "0" * 64):
            data = {"action": "create", "name": name} | ({"csrf": token} if token else {})
            refused = client.post(PREFIX + "buckets", data=data)
            assert refused.status_code == 403
        assert name not in client.get(PREFIX + "buckets").text
        token = csrf_of(client)
        foreign = client.post(PREFIX + "buckets", headers={"origin": "https://evil.example"},
                              data={"action": "create", "name": name, "csrf": token})  # fmt: skip
        assert foreign.status_code == 403
        made = client.post(
            PREFIX + "buckets", data={"action": "create", "name": name, "csrf": token}
        )
        assert made.status_code == 303
        assert f'<td class="name">{name}</td>' in client.get(PREFIX + "buckets").text
        gone = client.post(
            PREFIX + "buckets", data={"action": "delete", "name": name, "csrf": token}
        )
        assert gone.status_code == 303
        assert name not in client.get(PREFIX + "buckets").text


def test_a_read_only_key_is_refused_by_s3_itself(node: NodeProcess) -> None:
    access, secret = make_key(node, "--read-only")
    name = f"console-{secrets.token_hex(4)}"
    with sign_in(node, access, secret) as client:
        token = csrf_of(client)
        refused = client.post(
            PREFIX + "buckets", data={"action": "create", "name": name, "csrf": token}
        )
        assert refused.status_code == 403
        assert "AccessDenied" in refused.text
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as root:
        assert name not in root.get(PREFIX + "buckets").text


def test_an_invalid_bucket_name_is_shown_as_text_with_s3_s_error(node: NodeProcess) -> None:
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        token = csrf_of(client)
        hostile = "<img src=x onerror=alert(1)>"
        data = {"action": "create", "name": hostile, "csrf": token}
        answer = client.post(PREFIX + "buckets", data=data)
        assert answer.status_code == 400
        assert "InvalidBucketName" in answer.text
        assert "<img src=x" not in answer.text
        with_slash = client.post(PREFIX + "buckets", data=data | {"name": "a<b>/c"})
        assert with_slash.status_code == 404  # S3 reads bucket "a<b>", key "c": NoSuchBucket
        assert "NoSuchBucket" in with_slash.text
        assert "<b>" not in with_slash.text


def test_disabling_the_key_ends_its_session_and_sign_out_clears_it(node: NodeProcess) -> None:
    access, secret = make_key(node)
    with sign_in(node, access, secret) as client:
        assert client.get(PREFIX).status_code == 200
        run_node_command(node, "keys", "disable", access)
        eventually(lambda: client.get(PREFIX).status_code != 200, "the session to end")
        assert client.get(PREFIX).status_code == 303
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as root:
        token = csrf_of(root)
        out = root.post(PREFIX + "signout", data={"csrf": token})
        assert_sent_to_sign_in(out)
        assert "lakenode_console=" in out.headers["set-cookie"]
        assert root.get(PREFIX).status_code == 303


def test_the_console_is_not_served_on_the_metrics_address(node: NodeProcess) -> None:
    port = node.env["TEST_METRICS_PORT"]
    answer = httpx.get(f"http://127.0.0.1:{port}{PREFIX}signin", timeout=10)
    assert answer.status_code == 404


def test_console_off_serves_nothing(tmp_path: Path) -> None:
    process = NodeProcess(tmp_path / "data", extra_args=["--console", "off"]).start()
    try:
        answer = httpx.get(process.url + PREFIX + "signin", timeout=10)
        assert answer.status_code == 404
    finally:
        process.stop()
    assert not (tmp_path / "data" / "console.key").exists()
