"""node/console/figures.py: the overview's figures in words; and the state word, which must be
`lakenode repl status`'s (node/metrics/replication.py peer_state)."""

from __future__ import annotations

from typing import Any

from node.console import figures
from node.metrics.replication import PeerReport, peer_state
from storage.sync.peer_stats import ValidateRecord


def test_sizes_durations_and_rates() -> None:
    assert figures.size(0) == "0 B"
    assert figures.size(1023) == "1023 B"
    assert figures.size(1536) == "1.5 KiB"
    assert figures.size(5 << 30) == "5.0 GiB"
    assert figures.size(None) == figures.size(-1) == figures.size(True) == "-"
    assert figures.seconds(0.04) == "0.0 s"
    assert figures.seconds(75) == "1 min 15 s"
    assert figures.seconds(2 * 3600 + 600) == "2 h 10 min"
    assert figures.seconds(3 * 86400 + 4 * 3600) == "3 d 4 h"
    assert figures.seconds(float("inf")) == "-"
    assert figures.rate(2.345) == "2.35/s" and figures.rate(None) == "-"
    assert figures.offset(-0.012) == "-12 ms"
    assert figures.moment(0) == "1970-01-01 00:00:00 UTC"


def test_pending_changes_and_the_last_validate() -> None:
    assert figures.pending(3, 2048) == "3 ops, 2.0 KiB"
    assert figures.pending(None, None) == "-"  # behind: unknown while the peer is down
    assert figures.validate_outcome(None, 100.0) == "never"
    assert figures.validate_outcome({"differences": 0, "time_ms": 90_000}, 100.0) == (
        "agree, 10.0 s ago"
    )
    assert figures.validate_outcome({"differences": 1, "time_ms": 100_000}, 100.0) == (
        "1 difference, 0.0 s ago"
    )


def row(**changes: Any) -> dict[str, Any]:
    report = PeerReport(peer="site-1", url="http://peer", node_id="site-1", link_up=True,
                        backlog_ops=0, backlog_bytes=0, behind_ops=0, behind_bytes=0,
                        lag_s=0.0, last_validate=ValidateRecord(1, 0, "http://peer"))  # fmt: skip
    for name, value in changes.items():
        setattr(report, name, value)
    return report.to_json()


def test_in_sync_only_on_the_rule_of_repl_status() -> None:
    assert peer_state(row()) == "in sync"
    assert peer_state(row(link_up=False)) == "down"
    assert peer_state(row(backlog_ops=2)) == "catching up"
    assert peer_state(row(behind_ops=None)) == "pending"  # behind unknown: not in sync
    assert peer_state(row(last_validate=None)) == "not validated"
    assert peer_state(row(last_validate=ValidateRecord(1, 4, "u"))) == "differs"


def test_a_peer_row_in_words() -> None:
    document = row(backlog_ops=7, backlog_bytes=10240, lag_s=12.5, clock_offset_s=0.024)
    document["state"] = peer_state(document)
    shown = figures.peer_figures(document, 10.0)
    assert shown["link"] == "up"
    assert shown["backlog"] == "7 ops, 10.0 KiB"
    assert shown["lag"] == "12.5 s"
    assert shown["clock_offset"] == "+24 ms"
    assert shown["state"] == "catching up"
    assert shown["apply_errors"] == "none"
    assert shown["last_validate"] == "agree, 10.0 s ago"
