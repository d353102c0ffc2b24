"""Cut a byte stream into fixed-size chunks without holding more than one chunk.

The chunker is pure: feed it pieces of any size and it hands back complete chunks of exactly
``chunk_bytes`` (the last one may be shorter). Object data is stored chunk by chunk, each
chunk hashed with BLAKE3, so chunk boundaries depend only on offsets, never on how the
client's bytes happened to arrive.
"""

from __future__ import annotations

CHUNK_BYTES = 4 * 1024 * 1024


class Chunker:
    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        assert chunk_bytes > 0
        self.chunk_bytes = chunk_bytes
        self._buffer = bytearray()

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, piece: bytes | bytearray | memoryview) -> list[bytes]:
        """Add a piece; return the chunks it completed (usually zero or one)."""
        completed: list[bytes] = []
        view = memoryview(piece)
        while view:
            room = self.chunk_bytes - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) == self.chunk_bytes:
                completed.append(bytes(self._buffer))
                self._buffer.clear()
        return completed

    def finish(self) -> bytes | None:
        """Return the final partial chunk, if any bytes are left."""
        if not self._buffer:
            return None
        last = bytes(self._buffer)
        self._buffer.clear()
        return last
