"""delta-rs (``deltalake``) with its default S3 settings: concurrent appenders to one table.

delta-rs 1.x commits version N by writing ``_delta_log/N.json`` with ``If-None-Match: *`` (no
locking provider, no unsafe rename). A loser of the race gets 412 or 409 and retries at the
next version; so every acknowledged append must be in the table afterwards.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

APPENDERS = 6
ROWS_PER_APPEND = 10


def _storage_options(node: NodeProcess) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": node.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
    }


def _commit_puts(node: NodeProcess, bucket: str) -> list[int]:
    """Statuses of the PUTs of this table's commit files, from the node's access log."""
    statuses = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f"/{bucket}/table/_delta_log/" in line:
            entry = json.loads(line)
            if entry["method"] == "PUT" and entry["path"].endswith(".json"):
                statuses.append(int(entry["status"]))
    return statuses


def test_concurrent_appends_all_land(node: NodeProcess, bucket: str) -> None:
    options = _storage_options(node)
    uri = f"s3://{bucket}/table"
    write_deltalake(uri, pa.table({"writer": pa.array([-1], pa.int64())}), storage_options=options)
    start = threading.Barrier(APPENDERS)
    outcomes: dict[int, Any] = {}

    def append(writer: int) -> None:
        rows = pa.table({"writer": pa.array([writer] * ROWS_PER_APPEND, pa.int64())})
        start.wait()
        try:
            write_deltalake(uri, rows, mode="append", storage_options=options)
            outcomes[writer] = "ok"
        except Exception as error:  # a loser that gave up must say so (never lose silently)
            outcomes[writer] = error

    threads = [threading.Thread(target=append, args=(n,)) for n in range(APPENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    acknowledged = sorted(n for n, outcome in outcomes.items() if outcome == "ok")
    assert len(outcomes) == APPENDERS, outcomes
    assert acknowledged, outcomes
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == len(acknowledged)
    writers = table.to_pyarrow_table().column("writer").to_pylist()
    assert sorted(writers) == [-1, *sorted(acknowledged * ROWS_PER_APPEND)]
    statuses = _commit_puts(node, bucket)
    # One successful create per committed version; every other attempt was refused.
    assert statuses.count(200) == len(acknowledged) + 1, statuses
    assert set(statuses) <= {200, 409, 412}, statuses
