"""Fixtures of the console's tests: a node per test module (a module that needs another kind
of node overrides ``node``), a boto3 client of it, a root key's console session, fresh
buckets, and a headless Chromium pointed at ``console_url`` (the node's; a module may override
it) that must end a test without a JavaScript error."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import make_client
from tests.integration.console.browser import Browser, chromium
from tests.integration.console.console_http import sign_in
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess


def _module_name(request: pytest.FixtureRequest) -> str:
    return str(request.module.__name__).rsplit(".", 1)[-1]


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[NodeProcess]:
    """A node of the test module's own (its folder named after the module)."""
    process = NodeProcess(tmp_path_factory.mktemp(_module_name(request)) / "data")
    yield process.start()
    process.stop()


@pytest.fixture(scope="module")
def s3(node: NodeProcess) -> Any:
    return make_client(node.url)


@pytest.fixture
def root(node: NodeProcess) -> Iterator[httpx.Client]:
    """A console session of the root key."""
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        yield client


@pytest.fixture
def new_bucket(s3: Any) -> Callable[..., str]:
    """Makes a bucket named ``PREFIX-<random>`` (keyword arguments go to CreateBucket)."""

    def make(prefix: str, **create: Any) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=name, **create)
        return name

    return make


@pytest.fixture
def bucket(new_bucket: Callable[..., str], request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, named after the module: ``objects-…`` in test_objects_http."""
    return new_bucket(_module_name(request).removeprefix("test_").split("_")[0])


@pytest.fixture
def console_url(node: NodeProcess) -> str:
    return node.url


@pytest.fixture
def browser(console_url: str) -> Iterator[Browser]:
    with chromium(console_url) as opened:
        yield opened
        assert opened.console_errors() == []
