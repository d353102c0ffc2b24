"""Console sessions and CSRF tokens: signed, so that every worker of a node checks them alike.

A node serves the console from several worker processes, and a browser's requests land on
any of them, so a session cannot live in one worker's memory. The cookie carries the session
itself, signed with the node's console secret (``DATA/console.key``, 32 random bytes, mode
0600, created once by whichever worker gets there first):

    <payload, base64url> "." <HMAC-SHA256(console secret, payload), base64url>

The payload (JSON) holds the access key, a random session id, when the session began, when
it was last refreshed, and a fingerprint of the key's secret. A session ends:

* ``SESSION_MAX_S`` after sign-in, whatever happens (absolute expiry);
* ``SESSION_IDLE_S`` after its last refresh (the console re-issues the cookie once half of
  that has passed on a request, so an active operator stays signed in);
* as soon as the key is deleted, disabled or given a new secret: the caller looks the key up
  on every request, and the fingerprint must match its current secret.

The CSRF token of a session is HMAC(console secret, "csrf" + session id): forms carry it,
every state change must send it back, and it cannot be derived without the secret. The
secret itself never leaves the node; no secret key is ever put in a cookie or a page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from storage.segments import fsync_directory

SECRET_FILE: Final = "console.key"
SECRET_BYTES: Final = 32
SESSION_MAX_S: Final = 12 * 3600
SESSION_IDLE_S: Final = 3600
COOKIE_NAME: Final = "lakenode_console"


@dataclass(frozen=True)
class Session:
    access_key: str
    session_id: str
    started_s: int
    refreshed_s: int

    def needs_refresh(self, now_s: int, idle_s: int = SESSION_IDLE_S) -> bool:
        """More than half of the idle window has passed: re-issue the cookie."""
        return now_s - self.refreshed_s > idle_s // 2


def load_console_secret(data_dir: Path) -> bytes:
    """The node's console secret, created on first use (safe when workers race: the file
    appears whole, by link(2), or not at all)."""
    path = data_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    temporary = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(SECRET_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # fails if another worker made it first: then read theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    fsync_directory(data_dir)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path} holds {len(secret)} bytes, not {SECRET_BYTES}: remove it")
    return secret


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens with one console secret."""

    def __init__(
        self,
        secret: bytes,
        max_s: int = SESSION_MAX_S,
        idle_s: int = SESSION_IDLE_S,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the console secret must be at least 16 bytes")
        self._secret = secret
        self.max_s = max_s
        self.idle_s = idle_s

    def issue(self, access_key: str, secret_key: str, now_s: int) -> str:
        """A new session's cookie value, after a successful sign-in."""
        session = Session(access_key, secrets.token_urlsafe(16), now_s, now_s)
        return self._encode(session, secret_key)

    def refreshed(self, session: Session, secret_key: str, now_s: int) -> str:
        """The same session's cookie, with its idle clock restarted."""
        return self._encode(
            Session(session.access_key, session.session_id, session.started_s, now_s), secret_key
        )

    def check(
        self, cookie: str, secret_of: Callable[[str], str | None], now_s: int
    ) -> Session | None:
        """The session a cookie holds, or None if it is forged, expired, or its key is gone,
        disabled (``secret_of`` answers None) or has a new secret."""
        payload = self._verified_payload(cookie)
        if payload is None:
            return None
        try:
            fields = json.loads(payload)
            session = Session(
                str(fields["k"]), str(fields["s"]), int(fields["t"]), int(fields["r"])
            )
            fingerprint = str(fields["f"])
        except (ValueError, KeyError, TypeError):
            return None
        if now_s >= session.started_s + self.max_s or now_s >= session.refreshed_s + self.idle_s:
            return None
        if session.refreshed_s > now_s + 60:  # issued in the future: not by this clock
            return None
        secret_key = secret_of(session.access_key)
        if secret_key is None:
            return None
        if not hmac.compare_digest(fingerprint, self._fingerprint(secret_key)):
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        mac = hmac.new(self._secret, b"csrf\0" + session.session_id.encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(session))

    def _encode(self, session: Session, secret_key: str) -> str:
        fields = {
            "k": session.access_key,
            "s": session.session_id,
            "t": session.started_s,
            "r": session.refreshed_s,
            "f": self._fingerprint(secret_key),
        }
        payload = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def _verified_payload(self, cookie: str) -> bytes | None:
        encoded, dot, mac = cookie.partition(".")
        if not dot:
            return None
        try:
            payload, given = _unb64(encoded), _unb64(mac)
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        return payload

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, b"session\0" + payload, hashlib.sha256).digest()

    def _fingerprint(self, secret_key: str) -> str:
        """Which secret the key had at sign-in (a new secret ends its sessions); a keyed
        hash, so the cookie reveals nothing about the secret."""
        mac = hmac.new(self._secret, b"key\0" + secret_key.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the one encoding _b64 makes of some bytes (no padding, no stray bits),
    so a cookie cannot be rewritten into another string that still verifies."""
    if not text.isascii():
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return data
