"""Manifests: round trip, and every kind of damage is detected on decode."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import FormatError
from storage.manifest import ChunkRef, Kind, Manifest, decode

text = st.text(max_size=60)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    lengths = draw(st.lists(st.integers(1, 4 << 20), max_size=5))
    chunks = tuple(
        ChunkRef(
            draw(st.integers(1, 2**40)),
            draw(st.integers(16, 2**40)),
            length,
            draw(st.binary(min_size=32, max_size=32)),
        )
        for length in lengths
    )
    return Manifest(
        kind=draw(st.sampled_from(list(Kind))),
        bucket=draw(st.text(min_size=3, max_size=63)),
        key=draw(st.text(min_size=1, max_size=300)),
        version_id=draw(st.text(max_size=40)),
        hlc=draw(st.integers(0, 2**63)),
        origin=draw(st.text(max_size=40)),
        size=sum(lengths),
        etag=draw(st.text(max_size=40)),
        last_modified_ms=draw(st.integers(0, 2**50)),
        headers=tuple(draw(st.lists(st.tuples(text, text), max_size=4))),
        chunks=chunks,
    )


@given(manifests())
def test_encode_decode_round_trip(manifest: Manifest) -> None:
    assert decode(manifest.encode()) == manifest


def sample() -> Manifest:
    return Manifest(
        Kind.OBJECT,
        "bucket",
        "dir/key",
        "null",
        123,
        "node-a",
        10,
        "etag",
        1_700_000_000_000,
        (("content-type", "text/plain"),),
        (ChunkRef(1, 16, 10, b"\x01" * 32),),
    )


def test_every_single_bit_flip_is_detected() -> None:
    encoded = bytearray(sample().encode())
    for position in range(len(encoded)):
        damaged = bytearray(encoded)
        damaged[position] ^= 0x01
        with pytest.raises(FormatError):
            decode(bytes(damaged))


def test_truncation_and_trailing_bytes_are_rejected() -> None:
    encoded = sample().encode()
    for cut in (0, 3, 10, len(encoded) - 1):
        with pytest.raises(FormatError):
            decode(encoded[:cut])
    with pytest.raises(FormatError):
        decode(encoded + b"\x00")


def test_chunk_lengths_must_add_up_to_size() -> None:
    with pytest.raises(AssertionError):
        Manifest(
            Kind.OBJECT,
            "b",
            "k",
            "null",
            1,
            "n",
            11,
            "e",
            0,
            (),
            (ChunkRef(1, 16, 10, b"\x00" * 32),),
        ).encode()
