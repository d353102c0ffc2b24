"""api/write_gate.py: writes counted, refused while closed, close() waits for the last one."""

from __future__ import annotations

import asyncio

import pytest

from api.errors import S3Error
from api.write_gate import WriteGate


def test_a_closed_gate_refuses_with_slow_down_and_retry_after() -> None:
    gate = WriteGate(retry_after_s=7)
    with gate.s3_write():
        assert gate.in_flight == 1
    gate.close_now()
    with pytest.raises(S3Error) as refused, gate.s3_write():
        pass
    assert (refused.value.code, refused.value.status) == ("SlowDown", 503)
    assert refused.value.headers == {"Retry-After": "7"}
    assert gate.in_flight == 0
    gate.open()
    with gate.s3_write():
        assert gate.in_flight == 1


def test_close_returns_only_when_the_writes_in_flight_have_finished() -> None:
    async def scenario() -> list[str]:
        gate = WriteGate()
        events: list[str] = []
        release = asyncio.Event()

        async def write(name: str) -> None:
            with gate.s3_write():
                await release.wait()
                events.append(f"{name} done")

        writers = [asyncio.create_task(write(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        closing = asyncio.create_task(gate.close(timeout_s=5))
        await asyncio.sleep(0.05)
        assert not closing.done() and gate.closed and gate.in_flight == 2
        release.set()
        await closing
        events.append("closed")
        await asyncio.gather(*writers)
        return events

    assert asyncio.run(scenario()) == ["a done", "b done", "closed"]


def test_close_times_out_with_the_gate_still_closed() -> None:
    async def scenario() -> None:
        gate = WriteGate()
        with gate.s3_write():
            with pytest.raises(TimeoutError):
                await gate.close(timeout_s=0.05)
            assert gate.closed and gate.in_flight == 1
        await gate.close(timeout_s=0.05)  # nothing in flight any more: at once

    asyncio.run(scenario())


def test_a_failing_write_releases_its_slot() -> None:
    gate = WriteGate()
    with pytest.raises(ValueError), gate.s3_write():
        raise ValueError("the handler failed")
    assert gate.in_flight == 0
