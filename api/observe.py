"""What the S3 surface tells an observer about each request (metrics live in node/).

api/ must not depend on how requests are counted, so the dispatcher reports to this small
protocol and node/ implements it with Prometheus objects. Calls happen on the event loop for
every S3 request: implementations must be cheap and must not raise.
"""

from __future__ import annotations

from typing import Protocol

UNKNOWN_OPERATION = "Unknown"  # a request that could not be routed to an S3 operation


class RequestObserver(Protocol):
    def started(self) -> None:
        """A request arrived (before authentication)."""

    def finished(
        self, operation: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        """It ended: ``seconds`` to the last body byte sent, body bytes each way."""


class NoObserver:
    """The default: counts nothing."""

    def started(self) -> None:
        pass

    def finished(
        self, operation: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        pass
