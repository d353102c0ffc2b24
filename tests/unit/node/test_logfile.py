"""The log file shared by a supervisor and its workers: one rotates, all follow."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from node.logfile import add_log_file, log_files, rotate_if_due


@pytest.fixture
def handlers() -> Iterator[list[logging.Handler]]:
    added: list[logging.Handler] = []
    yield added
    root = logging.getLogger()
    for handler in added:
        root.removeHandler(handler)
        handler.close()


def test_workers_follow_the_supervisor_s_rotation(
    tmp_path: Path, handlers: list[logging.Handler]
) -> None:
    path = tmp_path / "logs" / "lakenode.log"
    supervisor = add_log_file(path)
    worker = add_log_file(path, rotate=False)
    handlers += [supervisor, worker]
    assert isinstance(supervisor, RotatingFileHandler)
    logging.getLogger().removeHandler(supervisor)  # lines below come from the "worker" only
    line = logging.LogRecord("lakenode", logging.INFO, __file__, 1, "x" * 100, None, None)

    for _ in range(20):
        worker.handle(line)
    rotate_if_due(supervisor, max_bytes=10_000)
    assert log_files(path) == [path]  # not full yet: nothing rotated
    for _ in range(100):
        worker.handle(line)
    rotate_if_due(supervisor, max_bytes=10_000)
    assert log_files(path) == [path, path.with_name("lakenode.log.1")]
    assert path.stat().st_size == 0

    worker.handle(logging.LogRecord("lakenode", logging.INFO, __file__, 1, "after", None, None))
    assert path.read_text().endswith("after\n")  # the worker writes to the new file
    assert "after" not in path.with_name("lakenode.log.1").read_text()
