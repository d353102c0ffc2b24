"""The console's overview and Replication pages over plain HTTP, against one node process
whose one peer is down (node/console/overview.py, replication.py, node_facts.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.console.console_http import PREFIX, csrf_of, make_key, sign_in
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess, free_port

SAMPLE_S = 0.3  # LAKENODE_CONSOLE_SAMPLE_S: the charts fill in seconds


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    dead_peer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    process = NodeProcess(
        tmp_path_factory.mktemp("overview") / "data",
        extra_args=["--node-id", "overview-node", "--peer", dead_peer],
        env={"LAKENODE_CONSOLE_SAMPLE_S": str(SAMPLE_S)},
    )
    yield process.start()
    process.stop()


def overview_document(client: httpx.Client) -> dict[str, Any]:
    answer = client.get(PREFIX + "api/overview")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = answer.json()
    return document


def test_the_overview_shows_the_node_its_storage_requests_and_peer(
    node: NodeProcess, s3: Any
) -> None:
    s3.create_bucket(Bucket="overview-http")
    s3.put_object(Bucket="overview-http", Key="k", Body=b"x" * 1000)
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        page = client.get(PREFIX)
        assert page.status_code == 200
        text = page.text
        assert '<dd class="node-id">overview-node</dd>' in text
        assert "Storage used" in text and "Disk free" in text
        assert "S3 requests" in text and "S3 errors (5xx)" in text
        assert " of " in text  # disk free "X GiB of Y GiB"
        assert 'static/overview.js" defer' in text
        assert 'id="overview-data"' in text
        # The peer: down (nothing listens), so not "in sync" (the rule of `repl status`).
        assert 'class="link-down" data-column="link">down<' in text
        assert 'class="state state-down" data-column="state">down<' in text
        assert "in sync" not in text


def test_the_overview_document_needs_a_session(node: NodeProcess) -> None:
    answer = httpx.get(node.url + PREFIX + "api/overview", timeout=30)
    assert answer.status_code == 401
    assert answer.json() == {"error": "Signed out: sign in again."}


def test_the_overview_document_has_figures_and_series(node: NodeProcess, s3: Any) -> None:
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        deadline = time.monotonic() + 30
        while True:
            s3.list_buckets()  # requests to count
            document = overview_document(client)
            if len(document["series"]["requests"]) >= 2 and document["requests"]["per_s"]:
                break
            assert time.monotonic() < deadline, document
            time.sleep(SAMPLE_S)
    assert document["node"]["node_id"] == "overview-node"
    assert document["node"]["storage"]["free_bytes"] > 0
    assert document["requests"]["per_s"] > 0
    assert document["shown"]["requests"].endswith("/s")
    assert document["sample_s"] == SAMPLE_S
    series = document["series"]
    assert set(series) == {"requests", "errors", "lag"}
    times = [at for at, _value in series["requests"]]
    assert times == sorted(times) and all(isinstance(at, int) for at in times)
    assert all(value >= 0 for _at, value in series["requests"])
    (peer,) = document["peers"]
    assert peer["link_up"] is False and peer["state"] == "down"
    assert peer["shown"]["link"] == "down"


def test_validate_now_needs_the_csrf_token_and_the_root_key(node: NodeProcess) -> None:
    access, secret = make_key(node)
    with sign_in(node, access, secret) as other:
        page = other.get(PREFIX + "replication")
        assert page.status_code == 200
        assert "Validate now" not in page.text  # no button for a key other than root
        assert "Conflicts</h2>" not in page.text  # nor the names conflicts carry
        token = csrf_of(other, "replication")
        forged = other.post(PREFIX + "replication/validate", data={"csrf": token})
        assert forged.status_code == 403
        assert "Only the root key" in forged.text
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as root:
        page = root.get(PREFIX + "replication")
        assert "Validate now" in page.text
        assert "No conflicts." in page.text
        for data in ({}, {"csrf": "0" * 64}):
            refused = root.post(PREFIX + "replication/validate", data=data)
            assert refused.status_code == 403
        foreign = root.post(PREFIX + "replication/validate",
                            headers={"origin": "https://evil.example"},
                            data={"csrf": csrf_of(root, "replication")})  # fmt: skip
        assert foreign.status_code == 403
        assert "Last run from the console" not in root.get(PREFIX + "replication").text
        ran = root.post(PREFIX + "replication/validate", data={"csrf": csrf_of(root, "")})
        assert ran.status_code == 303
        assert ran.headers["location"] == PREFIX + "replication#validate"
        shown = root.get(PREFIX + "replication").text
        assert "Last run from the console" in shown
        assert "failed: PeerUnavailable" in shown  # the peer is down: said, not a 500
