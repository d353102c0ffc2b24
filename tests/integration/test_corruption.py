"""Bit rot on disk is never served: GET verifies each chunk's BLAKE3 before sending it.

Method: store objects through a real node, stop it, flip bytes inside a chunk in the segment
file, restart, and read. A damaged first chunk gives a clean 500 InternalError; a damaged
later chunk cuts the response short (the client sees an incomplete body, never wrong bytes).
Undamaged objects keep reading back, and the damage is logged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

CHUNK = 4 * 1024 * 1024


@pytest.fixture
def damaged_node(tmp_path: Path) -> Iterator[tuple[NodeProcess, dict[str, bytes]]]:
    node = NodeProcess(tmp_path / "data").start()
    s3 = make_client(node.url)
    s3.create_bucket(Bucket="rot")
    objects = {
        "first-chunk": os.urandom(1000),
        "third-chunk": os.urandom(2 * CHUNK + 5000),
        "healthy": os.urandom(3000),
    }
    for key, data in objects.items():
        s3.put_object(Bucket="rot", Key=key, Body=data)
    node.stop()
    segment = sorted((node.data_dir / "segments").glob("*.seg"))[-1]
    content = segment.read_bytes()
    flip(segment, content.index(objects["first-chunk"][:64]) + 10)
    flip(segment, content.index(objects["third-chunk"][2 * CHUNK : 2 * CHUNK + 64]) + 100)
    node.start()
    yield node, objects
    node.stop()


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def test_damaged_first_chunk_is_a_clean_500(damaged_node: tuple[NodeProcess, Any]) -> None:
    node, _objects = damaged_node
    with pytest.raises(ClientError) as excinfo:
        make_client(node.url).get_object(Bucket="rot", Key="first-chunk")
    assert excinfo.value.response["Error"]["Code"] == "InternalError"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "BLAKE3" in node.log()


def test_damaged_later_chunk_cuts_the_response_short(
    damaged_node: tuple[NodeProcess, dict[str, bytes]],
) -> None:
    node, objects = damaged_node
    url = f"{node.url}/rot/third-chunk"
    headers = sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY)
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", url, headers=headers, timeout=30) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_bytes():
            received += piece
    expected = objects["third-chunk"]
    assert len(received) < len(expected)
    assert bytes(received) == expected[: len(received)]  # what was sent was right
    assert len(received) <= 2 * CHUNK  # nothing of the damaged chunk


def test_undamaged_objects_still_read_back(
    damaged_node: tuple[NodeProcess, dict[str, bytes]],
) -> None:
    node, objects = damaged_node
    body = make_client(node.url).get_object(Bucket="rot", Key="healthy")["Body"].read()
    assert body == objects["healthy"]
    # A range that avoids the damaged chunk of a damaged object is still served.
    ranged = (
        make_client(node.url)
        .get_object(Bucket="rot", Key="third-chunk", Range=f"bytes=0-{CHUNK - 1}")["Body"]
        .read()
    )
    assert ranged == objects["third-chunk"][:CHUNK]
