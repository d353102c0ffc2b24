"""A peer's base URL, checked and normalized: stdlib only, so that ``lakenode serve`` can
read its configuration without importing the HTTP client (node/config.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["normalize_base_url"]


def normalize_base_url(url: str) -> str:
    """``http(s)://host[:port]`` with no path, query or credentials; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"peer URL must be http://HOST[:PORT] or https://..., got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"peer URL must not have a path, query or credentials: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"peer URL has a bad port: {url!r}") from exc
    return f"{parts.scheme}://{parts.netloc}"
