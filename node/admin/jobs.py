"""Operator jobs (fsck, scrub, gc, snapshot...): one contract, two ways to run.

A job is an async function over an open :class:`Store`. ``lakenode <tool>`` runs it in
process on a stopped data dir; beside a running node (the data dir is locked) it asks that
node to run it through the admin channel (Unix socket in the data dir, see
``node/admin/server.py``), which streams progress back. Either way the job's report is the same
JSON-able mapping, so the human and ``--json`` renderings do not care where it ran.

A job marked ``quiet`` must not run beside a live writer: the running node refuses it with a
clear message unless maintenance mode is on.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from storage.ops.jobstate import Progress
from storage.store import Store

JobReport = dict[str, Any]
"""What a job returns: JSON-serializable; ``exit_code`` (int) is the tool's exit status."""


@dataclass(frozen=True)
class Job:
    name: str
    quiet: bool
    run: Callable[[Store, Mapping[str, Any], Progress], Awaitable[JobReport]]


class NoProgress:
    """Progress sink for tests and ``--json`` runs."""

    def advance(self, done: int, total: int | None, unit: str) -> None:
        return None

    def note(self, message: str) -> None:
        return None


class LineProgress:
    """Plain progress lines (not a terminal, or a log)."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out = out

    def advance(self, done: int, total: int | None, unit: str) -> None:
        of_total = f"/{total}" if total is not None else ""
        self._out.write(f"{done}{of_total} {unit}\n")

    def note(self, message: str) -> None:
        self._out.write(message + "\n")


_REGISTRY: dict[str, Job] = {}


def register(*jobs: Job) -> None:
    for job in jobs:
        if job.name in _REGISTRY and _REGISTRY[job.name] is not job:
            raise ValueError(f"job {job.name!r} registered twice")
        _REGISTRY[job.name] = job


def lookup(name: str) -> Job:
    return _REGISTRY[name]


def registered() -> dict[str, Job]:
    return dict(_REGISTRY)
