"""node/admin/progress.py (plain lines, throttled) and node/redact.py (no secret leaves)."""

from __future__ import annotations

import io
from pathlib import Path

from node.admin.progress import ThrottledLines, job_progress
from node.config import ServeConfig
from node.redact import REDACTED, public_config, redact


def test_plain_progress_lines_are_throttled_but_keep_the_last_and_every_note() -> None:
    out = io.StringIO()
    now = [100.0]
    lines = ThrottledLines(out, interval_s=1.0, clock=lambda: now[0])
    for done in range(1, 11):  # ten updates within 0.9 s
        lines.advance(done * 10, 200, "objects")
        now[0] += 0.1
    lines.note("found something")
    now[0] += 1.0
    lines.advance(150, 200, "objects")  # a second later: shown
    lines.advance(160, 200, "objects")  # at once: not shown
    lines.advance(200, 200, "objects")  # the last: always shown
    assert out.getvalue().splitlines() == [
        "10/200 objects",
        "found something",
        "150/200 objects",
        "200/200 objects",
    ]


def test_job_progress_off_a_terminal_is_plain_lines() -> None:
    out = io.StringIO()
    with job_progress("scrub", out) as progress:
        progress.advance(1, None, "bytes")
        progress.note("done")
    assert out.getvalue() == "1 bytes\ndone\n"


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
