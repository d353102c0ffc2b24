"""node/redact.py: no secret leaves."""

from __future__ import annotations

from pathlib import Path

from node.config import ServeConfig
from node.redact import REDACTED, public_config, redact


def test_redact_replaces_secret_named_values_at_any_depth() -> None:
    document = {
        "secret_key": "s1",
        "peer": {"peer_secret_key": "s2", "url": "http://x", "admin_token": "t"},
        "list": [{"password": "p"}, {"access_key": "visible"}],
        "none_secret": None,
    }
    assert redact(document) == {
        "secret_key": REDACTED,
        "peer": {"peer_secret_key": REDACTED, "url": "http://x", "admin_token": REDACTED},
        "list": [{"password": REDACTED}, {"access_key": "visible"}],
        "none_secret": None,
    }


def test_public_config_has_no_secret_value() -> None:
    config = ServeConfig(
        data_dir=Path("/d"), host="127.0.0.1", port=9000, access_key="ak", secret_key="sk-123",
        region="us-east-1", auth=True, node_id=None, max_object_size=1, segment_size=1,
        domain=None, allow_default_credentials=False, peer_access_key="pk",
        peer_secret_key="psk-456", peers=("http://p",),
    )  # fmt: skip
    shown = public_config(config)
    assert shown["secret_key"] == shown["peer_secret_key"] == REDACTED
    assert shown["access_key"] == "ak" and shown["peers"] == ["http://p"]
    assert "sk-123" not in repr(shown) and "psk-456" not in repr(shown)
