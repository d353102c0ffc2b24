"""Chunker: boundaries depend only on offsets, never on how the bytes arrived."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from storage.chunker import Chunker


def chunk_all(data: bytes, piece_sizes: list[int], chunk_bytes: int) -> list[bytes]:
    chunker = Chunker(chunk_bytes)
    chunks: list[bytes] = []
    position = 0
    for size in piece_sizes:
        chunks.extend(chunker.feed(data[position : position + size]))
        position += size
    chunks.extend(chunker.feed(data[position:]))
    last = chunker.finish()
    if last is not None:
        chunks.append(last)
    return chunks


@given(st.binary(max_size=5000), st.lists(st.integers(0, 700), max_size=30), st.integers(1, 1024))
def test_chunks_are_full_except_last_and_reassemble(
    data: bytes, pieces: list[int], chunk_bytes: int
) -> None:
    chunks = chunk_all(data, pieces, chunk_bytes)
    assert b"".join(chunks) == data
    assert all(len(c) == chunk_bytes for c in chunks[:-1])
    assert all(0 < len(c) <= chunk_bytes for c in chunks)
    assert chunks == chunk_all(data, [], chunk_bytes)  # same cut whatever the pieces


def test_exact_multiple_has_no_empty_tail() -> None:
    chunks = chunk_all(b"x" * 4096, [1000, 3000], 1024)
    assert [len(c) for c in chunks] == [1024] * 4


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_all(b"", [], 16) == []


def test_four_mib_default_boundaries() -> None:
    data = random.Random(1).randbytes(9 * 1024 * 1024)
    chunks = chunk_all(data, [65536] * 100, 4 * 1024 * 1024)
    assert [len(c) for c in chunks] == [4 << 20, 4 << 20, 1 << 20]
