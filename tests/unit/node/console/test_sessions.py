"""node/console/sessions.py: signed sessions every worker checks alike, expiry, CSRF."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from node.console.sessions import (
    SECRET_BYTES,
    SECRET_FILE,
    SessionSigner,
    load_console_secret,
)

KEYS = {"alice": "alice-secret", "bob": "bob-secret"}
T0 = 1_800_000_000


def secret_of(keys: dict[str, str]):  # type: ignore[no-untyped-def]
    return keys.get


def signer(max_s: int = 3600 * 12, idle_s: int = 3600) -> SessionSigner:
    return SessionSigner(b"k" * 32, max_s=max_s, idle_s=idle_s)


def test_a_session_round_trips_and_names_its_key() -> None:
    cookie = signer().issue("alice", KEYS["alice"], T0)
    session = signer().check(cookie, KEYS.get, T0 + 10)
    assert session is not None
    assert (session.access_key, session.started_s, session.refreshed_s) == ("alice", T0, T0)
    assert "alice-secret" not in cookie


def test_each_sign_in_is_a_new_session() -> None:
    one, two = (
        signer().issue("alice", "alice-secret", T0),
        signer().issue("alice", "alice-secret", T0),
    )
    assert one != two


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: ("A" if c[0] != "A" else "B") + c[1:],  # the payload
        lambda c: c[:-5] + ("A" if c[-5] != "A" else "B") + c[-4:],  # the MAC
        lambda c: c[:-1] + chr(ord(c[-1]) ^ 1),  # the MAC's last character (2 unused bits)
        lambda c: c[:-2],
        lambda c: c.split(".")[0],
        lambda c: "." + c,
        lambda c: c + "x",
        lambda c: "é" + c,
        lambda c: "",
    ],
)
def test_a_changed_or_garbled_cookie_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    cookie = signer().issue("alice", KEYS["alice"], T0)
    changed = tamper(cookie)
    assert changed != cookie
    assert signer().check(changed, KEYS.get, T0 + 1) is None


def test_a_cookie_signed_with_another_console_secret_is_refused() -> None:
    cookie = SessionSigner(b"x" * 32).issue("alice", KEYS["alice"], T0)
    assert signer().check(cookie, KEYS.get, T0 + 1) is None


def test_idle_and_absolute_expiry() -> None:
    s = signer(max_s=100, idle_s=40)
    cookie = s.issue("alice", KEYS["alice"], T0)
    assert s.check(cookie, KEYS.get, T0 + 39) is not None
    assert s.check(cookie, KEYS.get, T0 + 40) is None  # idle
    session = s.check(cookie, KEYS.get, T0 + 30)
    assert session is not None and session.needs_refresh(T0 + 30, idle_s=40)
    refreshed = s.refreshed(session, KEYS["alice"], T0 + 30)
    assert s.check(refreshed, KEYS.get, T0 + 69) is not None
    assert s.check(refreshed, KEYS.get, T0 + 70) is None
    again = s.check(refreshed, KEYS.get, T0 + 60)
    assert again is not None and again.session_id == session.session_id
    late = s.refreshed(again, KEYS["alice"], T0 + 95)
    assert s.check(late, KEYS.get, T0 + 99) is not None
    assert s.check(late, KEYS.get, T0 + 100) is None  # absolute, however active


def test_a_deleted_disabled_or_rotated_key_ends_its_sessions() -> None:
    cookie = signer().issue("alice", KEYS["alice"], T0)
    assert signer().check(cookie, {}.get, T0 + 1) is None  # deleted or disabled
    assert signer().check(cookie, {"alice": "new-secret"}.get, T0 + 1) is None  # rotated
    assert signer().check(cookie, KEYS.get, T0 + 1) is not None


def test_a_cookie_from_the_future_is_refused() -> None:
    cookie = signer().issue("alice", KEYS["alice"], T0 + 3600)
    assert signer().check(cookie, KEYS.get, T0) is None


def test_csrf_token_belongs_to_one_session() -> None:
    s = signer()
    one = s.check(s.issue("alice", KEYS["alice"], T0), KEYS.get, T0)
    two = s.check(s.issue("alice", KEYS["alice"], T0), KEYS.get, T0)
    assert one is not None and two is not None
    token = s.csrf_token(one)
    assert s.csrf_valid(one, token)
    assert not s.csrf_valid(two, token)
    assert not s.csrf_valid(one, None)
    assert not s.csrf_valid(one, "")
    assert not s.csrf_valid(one, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not SessionSigner(b"x" * 32).csrf_valid(one, token)


def test_the_console_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    first = load_console_secret(tmp_path)
    assert len(first) == SECRET_BYTES
    mode = stat.S_IMODE(os.stat(tmp_path / SECRET_FILE).st_mode)
    assert mode == 0o600
    assert load_console_secret(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_FILE]


def _load(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(load_console_secret(Path(path)))


def test_workers_racing_to_make_the_secret_all_get_the_same_one(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    racers = [context.Process(target=_load, args=(str(tmp_path), out)) for _ in range(4)]
    for racer in racers:
        racer.start()
    secrets_seen = {out.get(timeout=30) for _ in racers}
    for racer in racers:
        racer.join(timeout=30)
    assert secrets_seen == {load_console_secret(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [SECRET_FILE]


def test_a_truncated_secret_file_is_an_error_not_a_weak_key(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="remove it"):
        load_console_secret(tmp_path)
