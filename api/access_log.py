"""Access log: one JSON line per request on stdout (an ASGI middleware).

Fields: time, method, path, status, bytes_in, bytes_out, duration_ms, request_id, access_key,
operation. Counting happens on the ASGI messages themselves, so streamed bodies are counted
exactly and nothing is buffered. Secrets never appear: only the access key id is logged.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream or sys.stdout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        counters = {"in": 0, "out": 0, "status": 0}
        scope.setdefault("state", {})

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                counters["in"] += len(message.get("body", b""))
            return message

        written = False

        async def counting_send(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start":
                counters["status"] = message["status"]
            elif message["type"] == "http.response.body":
                counters["out"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    # Before the last byte goes out: whoever has the answer finds the line
                    # (several worker processes share stdout; a reader may be a test).
                    self._write(scope, counters, started)
                    written = True
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            if not written:
                self._write(scope, counters, started)

    def _write(self, scope: Scope, counters: dict[str, int], started: float) -> None:
        state: dict[str, Any] = scope.get("state", {})
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": counters["status"] or 500,
            "bytes_in": counters["in"],
            "bytes_out": counters["out"],
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": state.get("request_id"),
            "access_key": state.get("access_key"),
            "operation": state.get("operation"),
        }
        self.stream.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.stream.flush()
