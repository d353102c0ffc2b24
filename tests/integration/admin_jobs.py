"""Example operator jobs for the admin-channel tests, and a ``lakenode`` that has them.

``python -m tests.integration.admin_jobs serve ...`` is ``lakenode serve`` with these jobs
registered, so a real node process can run them; the tests import this module to run them in
process (on a stopped data dir) through the same ``run_job``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from node.admin.jobs import Job, JobReport, register
from node.cli.main import main
from storage.ops.jobstate import Progress
from storage.store import Store

HOLD_LIMIT_S = 30.0


async def _count_steps(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    """Reports ``steps`` steps (a note and the figures each), then where it ran. With
    ``hold_until`` (a path), it first waits until that file exists: a job that is running
    for as long as a test needs."""
    if "hold_until" in params:
        release, waited = Path(params["hold_until"]), 0.0
        while not release.exists() and waited < HOLD_LIMIT_S:
            await asyncio.sleep(0.02)
            waited += 0.02
    steps = int(params.get("steps", 3))
    for step in range(1, steps + 1):
        await asyncio.sleep(float(params.get("delay_s", 0.02)))
        progress.note(f"step {step}")
        progress.advance(step, steps, "steps")
    return {
        "exit_code": 0,
        "pid": os.getpid(),
        "node_id": store.node_id,
        "buckets": len(await store.list_buckets()),
        "steps": steps,
    }


async def _fail(store: Store, params: Mapping[str, Any], progress: Progress) -> JobReport:
    progress.note("about to fail")
    raise RuntimeError("the example job failed on purpose")


STEPS = Job("test-steps", quiet=False, run=_count_steps)
QUIET_STEPS = Job("test-quiet-steps", quiet=True, run=_count_steps)
FAILING = Job("test-fail", quiet=False, run=_fail)
register(STEPS, QUIET_STEPS, FAILING)

if __name__ == "__main__":
    sys.exit(main())
