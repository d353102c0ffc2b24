"""Fixtures: one real node process per test session, clients pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

_bucket_numbers = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("node") / "data").start()
    yield process
    process.stop()


def make_client(url: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(**config) if config else None,
    )


@pytest.fixture(scope="session")
def s3(node: NodeProcess) -> Any:
    """A boto3 client with default settings (flexible checksums, aws-chunked uploads)."""
    return make_client(node.url)


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, named after the test."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t{next(_bucket_numbers)}-{stem}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
