"""x-amz-replication-status: REPLICA on a copy; PENDING, then COMPLETED, on the origin.

Method: two sites replicate both ways. An object written on A reads as REPLICA on B; on A it
turns COMPLETED once B has acknowledged it (B's next pull after applying it). While B is
down, a new write on A stays PENDING.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess, two_way_pair

LIMIT_S = 20.0


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    a, b = two_way_pair(tmp_path, ("site-a", "site-b"))
    yield a, b
    b.stop()
    a.stop()


def status_of(client: Any, key: str) -> str | None:
    try:
        head = client.head_object(Bucket="rstatus", Key=key)
    except client.exceptions.ClientError:
        return None
    value = head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-replication-status")
    return str(value) if value is not None else None


def wait_status(client: Any, key: str, wanted: str) -> None:
    deadline = time.monotonic() + LIMIT_S
    while (found := status_of(client, key)) != wanted:
        assert time.monotonic() < deadline, f"{key}: status {found!r}, wanted {wanted!r}"
        time.sleep(0.2)


def test_replica_completed_and_pending(sites: tuple[NodeProcess, NodeProcess]) -> None:
    a, b = sites
    on_a, on_b = make_client(a.url), make_client(b.url)
    on_a.create_bucket(Bucket="rstatus")
    on_a.put_object(Bucket="rstatus", Key="k", Body=b"x")
    wait_status(on_b, "k", "REPLICA")
    wait_status(on_a, "k", "COMPLETED")
    assert (
        on_a.get_object(Bucket="rstatus", Key="k")["ResponseMetadata"]["HTTPHeaders"][
            "x-amz-replication-status"
        ]
        == "COMPLETED"
    )

    b.stop()
    on_a.put_object(Bucket="rstatus", Key="while-b-is-down", Body=b"y")
    time.sleep(1.0)  # B could not have acknowledged it
    assert status_of(on_a, "while-b-is-down") == "PENDING"
    b.start()
    wait_status(on_a, "while-b-is-down", "COMPLETED")
