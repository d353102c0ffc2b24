"""TLS: checking the node's certificate files, and the contexts its clients verify with.

The node serves HTTPS itself when given ``--tls-cert``/``--tls-key`` (uvicorn loads them).
Clients: peers are verified against ``--peer-ca`` when given, else the system store (httpx's
default, which honours ``SSL_CERT_FILE``). Local tools talking to their own running node pin
the certificate the node recorded in ``DATA/serve.json``: that exact certificate is the only
trust anchor, so a self-signed one works, and the host name is not checked because the record
names a loopback address the certificate need not name.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsFileError(ValueError):
    """A certificate or key file that cannot be used; the message says which and why."""


def check_server_files(cert: Path, key: Path) -> None:
    """Load the pair the way the server will, so a bad file fails at start with one line."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = _reason(exc)
        raise TlsFileError(f"cannot load certificate {cert} with key {key}: {reason}") from exc


def peer_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """How to verify https peers: against ``ca_file`` only, else the default store (True)."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise TlsFileError(f"cannot load CA certificates from {ca_file}: {_reason(exc)}") from exc


def pinned_context(cert: Path) -> ssl.SSLContext:
    """Trust exactly ``cert`` (the node's own certificate), whoever issued it."""
    try:
        context = ssl.create_default_context(cafile=str(cert))
    except (ssl.SSLError, OSError) as exc:
        raise TlsFileError(f"cannot load the node's certificate {cert}: {_reason(exc)}") from exc
    context.check_hostname = False  # trust comes from the pin, see the module docstring
    # Accept the pinned certificate itself as the anchor even when it is not self-signed.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
