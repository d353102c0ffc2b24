"""Console sessions end on time (docs/console.md: absolute expiry 12 h, idle expiry 1 h),
against a real node: cookies are made as the node would have made them at an earlier time,
with the node's own console secret (DATA/console.key) and its SessionSigner."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

from node.console.sessions import (
    COOKIE_NAME,
    SESSION_IDLE_S,
    SESSION_MAX_S,
    Session,
    SessionSigner,
    load_console_secret,
)
from tests.integration.console.console_http import (
    PREFIX,
    assert_sent_to_sign_in,
    http_client,
    sign_in,
)
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

HOUR_S = 3600


@pytest.fixture(scope="module")
def signer(node: NodeProcess) -> SessionSigner:
    """The node's own signer: a real sign-in first, so the node has made its console.key."""
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        assert client.get(PREFIX).status_code == 200
    return SessionSigner(load_console_secret(node.data_dir))


def cookie_of(signer: SessionSigner, started_s: int, refreshed_s: int) -> str:
    """The cookie the node would have set for a root session begun at ``started_s`` and last
    refreshed at ``refreshed_s``."""
    session = Session(ACCESS_KEY, secrets.token_urlsafe(16), started_s, started_s)
    return signer.refreshed(session, SECRET_KEY, refreshed_s)


def with_cookie(node: NodeProcess, cookie: str) -> httpx.Client:
    """A client that sends the console cookie ``cookie``."""
    client = http_client(node)
    client.cookies.set(COOKIE_NAME, cookie, path=PREFIX)
    return client


def overview_with(node: NodeProcess, cookie: str) -> httpx.Response:
    with with_cookie(node, cookie) as client:
        return client.get(PREFIX)


def test_the_limits_are_the_documented_ones() -> None:
    assert (SESSION_MAX_S, SESSION_IDLE_S) == (12 * HOUR_S, HOUR_S)


def test_a_fresh_session_is_accepted(node: NodeProcess, signer: SessionSigner) -> None:
    now = int(time.time())
    answer = overview_with(node, signer.issue(ACCESS_KEY, SECRET_KEY, now))
    assert answer.status_code == 200
    assert ACCESS_KEY in answer.text


def test_a_long_session_in_use_is_accepted_until_its_absolute_expiry(
    node: NodeProcess, signer: SessionSigner
) -> None:
    now = int(time.time())
    answer = overview_with(node, cookie_of(signer, now - 11 * HOUR_S, now - 60))
    assert answer.status_code == 200


def test_a_session_begun_13_hours_ago_is_refused(node: NodeProcess, signer: SessionSigner) -> None:
    now = int(time.time())
    # Refreshed a minute ago, so only the absolute expiry can refuse it.
    assert_sent_to_sign_in(overview_with(node, cookie_of(signer, now - 13 * HOUR_S, now - 60)))
    assert_sent_to_sign_in(
        overview_with(node, signer.issue(ACCESS_KEY, SECRET_KEY, now - 13 * HOUR_S))
    )


def test_a_session_idle_for_2_hours_is_refused(node: NodeProcess, signer: SessionSigner) -> None:
    now = int(time.time())
    # Begun 3 hours ago, well within the absolute expiry: only the idle expiry refuses it.
    idle = cookie_of(signer, now - 3 * HOUR_S, now - 2 * HOUR_S)
    assert_sent_to_sign_in(overview_with(node, idle))
    with with_cookie(node, idle) as client:
        for page in ("buckets", "keys"):
            assert_sent_to_sign_in(client.get(PREFIX + page))
        forged = client.post(PREFIX + "keys", data={"action": "create", "access_key": "late"})
        assert_sent_to_sign_in(forged)


def test_an_idle_session_is_refreshed_on_use(node: NodeProcess, signer: SessionSigner) -> None:
    now = int(time.time())
    answer = overview_with(node, cookie_of(signer, now - 2 * HOUR_S, now - 40 * 60))
    assert answer.status_code == 200
    refreshed = answer.cookies.get(COOKIE_NAME)
    assert refreshed is not None  # re-issued: past half of the idle window
    session = signer.check(refreshed, lambda _key: SECRET_KEY, now + 30 * 60)
    assert session is not None and session.started_s == now - 2 * HOUR_S


def test_a_cookie_signed_with_another_secret_is_refused(node: NodeProcess) -> None:
    other = SessionSigner(secrets.token_bytes(32))
    now = int(time.time())
    assert_sent_to_sign_in(overview_with(node, other.issue(ACCESS_KEY, SECRET_KEY, now)))
