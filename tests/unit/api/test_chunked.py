"""aws-chunked decoding: AWS's examples, every mode, arbitrary piece sizes, every failure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable

import pytest

from api.checksums import ALGORITHMS, header_name, new_checksum
from api.chunked import ChunkedDecoder, encode_chunked
from api.errors import S3Error
from api.sigv4 import AuthContext
from api.sigv4_canonical import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    signing_key,
)
from tests.checksum_reference import b64 as reference_b64

DOC_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_DATE = "20130524T000000Z"
DOC_SCOPE = "20130524/us-east-1/s3/aws4_request"
DOC_KEY = signing_key(DOC_SK, "20130524", "us-east-1")


def doc_auth(seed: str, payload_hash: str) -> AuthContext:
    return AuthContext(
        access_key="AKIAIOSFODNN7EXAMPLE",
        payload_hash=payload_hash,
        amz_date=DOC_DATE,
        scope=DOC_SCOPE,
        signing_key=DOC_KEY,
        seed_signature=seed,
        presigned=False,
    )


AUTH = doc_auth("ab" * 32, STREAMING_PAYLOAD)


async def _pieces(data: bytes, sizes: Iterable[int]) -> AsyncIterator[bytes]:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        yield data[pos : pos + size]
        pos += size
    if pos < len(data):
        yield data[pos:]


def random_sizes(seed: int, total: int) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.choice([1, 2, 3, rng.randint(1, 100), rng.randint(1, total)]))
    return sizes


def decode(decoder: ChunkedDecoder, body: bytes, sizes: Iterable[int] | None = None) -> bytes:
    async def run() -> bytes:
        out = bytearray()
        async for data in decoder.decode(_pieces(body, sizes or [len(body) or 1])):
            out += data
        return bytes(out)

    return asyncio.run(run())


def expect_error(decoder: ChunkedDecoder, body: bytes, code: str) -> S3Error:
    with pytest.raises(S3Error) as caught:
        decode(decoder, body)
    assert caught.value.code == code, caught.value.message
    return caught.value


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --------------------------------------------------------------------------------------
# AWS's documented examples
# --------------------------------------------------------------------------------------

DOC_DATA = b"a" * 66560


def doc_body(signatures: list[str], tail: bytes) -> bytes:
    sizes = [65536, 1024, 0]
    out = b""
    for size, sig in zip(sizes, signatures, strict=True):
        out += f"{size:x};chunk-signature={sig}\r\n".encode() + b"a" * size
        if size:
            out += b"\r\n"
    return out + tail


DOC_PUT_BODY = doc_body(
    [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ],
    b"\r\n",
)
DOC_PUT_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def doc_put_decoder() -> ChunkedDecoder:
    return ChunkedDecoder(doc_auth(DOC_PUT_SEED, STREAMING_PAYLOAD), STREAMING_PAYLOAD,
                          66560, [])  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_doc_put_object_example(seed: int) -> None:
    assert len(DOC_PUT_BODY) == 66824  # the example's Content-Length
    sizes = random_sizes(seed, len(DOC_PUT_BODY))
    assert decode(doc_put_decoder(), DOC_PUT_BODY, sizes) == DOC_DATA


def test_doc_put_object_example_one_byte_pieces() -> None:
    assert decode(doc_put_decoder(), DOC_PUT_BODY, [1] * len(DOC_PUT_BODY)) == DOC_DATA


def test_doc_put_object_with_wrong_seed() -> None:
    decoder = ChunkedDecoder(doc_auth("0" * 64, STREAMING_PAYLOAD), STREAMING_PAYLOAD, 66560, [])
    expect_error(decoder, DOC_PUT_BODY, "SignatureDoesNotMatch")


TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNK_SIGS = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
TRAILER_BLOCK = (
    b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
    b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
    b"\r\n"
)


@pytest.mark.parametrize("separator", [b"", b"\r\n"], ids=["sdk-layout", "doc-layout"])
def test_doc_trailer_example(separator: bytes) -> None:
    body = doc_body(TRAILER_CHUNK_SIGS, separator + TRAILER_BLOCK)
    mode = STREAMING_PAYLOAD_TRAILER
    decoder = ChunkedDecoder(doc_auth(TRAILER_SEED, mode), mode, 66560, ["x-amz-checksum-crc32c"])
    assert decode(decoder, body, random_sizes(7, len(body))) == DOC_DATA
    assert decoder.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_doc_trailer_example_with_tampered_trailer() -> None:
    body = doc_body(TRAILER_CHUNK_SIGS, TRAILER_BLOCK.replace(b"sOO8/Q==", b"AAAAAA=="))
    mode = STREAMING_PAYLOAD_TRAILER
    decoder = ChunkedDecoder(doc_auth(TRAILER_SEED, mode), mode, 66560, ["x-amz-checksum-crc32c"])
    expect_error(decoder, body, "SignatureDoesNotMatch")


# --------------------------------------------------------------------------------------
# Every mode from generated bodies
# --------------------------------------------------------------------------------------

DATA = random.Random(42).randbytes(10_000)


def trailer_for(algorithm: str, data: bytes) -> dict[str, str]:
    checksum = new_checksum(algorithm)
    checksum.update(data)
    return {header_name(algorithm): checksum.b64digest()}


MODES = [
    (STREAMING_PAYLOAD, True, False),
    (STREAMING_PAYLOAD_TRAILER, True, True),
    (STREAMING_UNSIGNED_PAYLOAD_TRAILER, False, True),
    (UNSIGNED_PAYLOAD, False, False),
]


def make(mode: str, signed: bool, trailers: dict[str, str] | None, data: bytes = DATA,
         chunk: int = 4096) -> tuple[ChunkedDecoder, bytes]:  # fmt: skip
    auth = doc_auth("cd" * 32, mode) if signed else None
    body = encode_chunked(chunks_of(data, chunk), auth, trailers)
    decoder = ChunkedDecoder(auth, mode, len(data), list(trailers or {}))
    return decoder, body


@pytest.mark.parametrize(("mode", "signed", "with_trailer"), MODES)
@pytest.mark.parametrize("seed", range(4))
def test_all_modes_any_piece_sizes(mode: str, signed: bool, with_trailer: bool, seed: int) -> None:
    algorithm = ALGORITHMS[seed % len(ALGORITHMS)]
    trailers = trailer_for(algorithm, DATA) if with_trailer else None
    decoder, body = make(mode, signed, trailers)
    assert decode(decoder, body, random_sizes(seed, len(body))) == DATA
    assert decoder.trailers == (trailers or {})


@pytest.mark.parametrize(("mode", "signed", "with_trailer"), MODES)
def test_all_modes_one_byte_pieces(mode: str, signed: bool, with_trailer: bool) -> None:
    data = DATA[:700]
    trailers = trailer_for("CRC32", data) if with_trailer else None
    decoder, body = make(mode, signed, trailers, data, chunk=256)
    assert decode(decoder, body, [1] * len(body)) == data


def test_several_trailers_and_empty_body() -> None:
    trailers = {**trailer_for("CRC32", b""), **trailer_for("SHA256", b"")}
    mode = STREAMING_PAYLOAD_TRAILER
    decoder, body = make(mode, True, trailers, b"")
    assert decode(decoder, body) == b""
    assert decoder.trailers == trailers


def test_unsigned_chunk_extensions_are_ignored() -> None:
    body = b"3;foo=bar\r\nabc\r\n0\r\n\r\n"
    assert decode(ChunkedDecoder(None, UNSIGNED_PAYLOAD, 3, []), body) == b"abc"


def test_missing_final_blank_line_is_tolerated() -> None:
    decoder, body = make(STREAMING_PAYLOAD, True, None)
    assert body.endswith(b"\r\n\r\n")
    assert decode(decoder, body[:-2]) == DATA


def test_output_streams_and_stays_bounded() -> None:
    """Data comes out before the body has been read, in pieces no larger than the input's."""
    decoder, body = make(STREAMING_PAYLOAD, True, None, chunk=len(DATA))
    consumed = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal consumed
        for piece in chunks_of(body, 512):
            consumed += 1
            yield piece

    async def run() -> tuple[int, int]:
        first_at = 0
        largest = 0
        async for data in decoder.decode(source()):
            first_at = first_at or consumed
            largest = max(largest, len(data))
        return first_at, largest

    first_at, largest = asyncio.run(run())
    assert first_at <= 2  # not after the whole 10 000-byte chunk arrived
    assert largest <= 512


# --------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------


def test_bad_chunk_signature() -> None:
    decoder, body = make(STREAMING_PAYLOAD, True, None)
    second = body.index(b";chunk-signature=", 100) + len(b";chunk-signature=")
    flipped = body[:second] + (b"0" if body[second : second + 1] != b"0" else b"1")
    expect_error(decoder, flipped + body[second + 1 :], "SignatureDoesNotMatch")


def test_bad_final_chunk_signature() -> None:
    decoder, body = make(STREAMING_PAYLOAD, True, None)
    last = body.rindex(b"0;chunk-signature=") + len(b"0;chunk-signature=")
    tampered = body[:last] + b"f" * 64 + body[last + 64 :]
    expect_error(decoder, tampered, "SignatureDoesNotMatch")


def test_tampered_data_fails_signature() -> None:
    decoder, body = make(STREAMING_PAYLOAD, True, None)
    index = body.index(b"\r\n") + 10
    tampered = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
    expect_error(decoder, tampered, "SignatureDoesNotMatch")


def test_missing_chunk_signature_in_signed_mode() -> None:
    decoder = ChunkedDecoder(AUTH, STREAMING_PAYLOAD, 3, [])
    expect_error(decoder, b"3\r\nabc\r\n0\r\n\r\n", "InvalidRequest")


@pytest.mark.parametrize("mode", [STREAMING_PAYLOAD_TRAILER,
                                  STREAMING_UNSIGNED_PAYLOAD_TRAILER])  # fmt: skip
def test_bad_trailer_checksum(mode: str) -> None:
    signed = mode == STREAMING_PAYLOAD_TRAILER
    decoder, body = make(mode, signed, trailer_for("CRC32", DATA + b"x"))
    error = expect_error(decoder, body, "BadDigest")
    assert error.message == "The CRC32 you specified did not match the calculated checksum."


def test_bad_trailer_checksum_names_crc32c() -> None:
    decoder, body = make(STREAMING_UNSIGNED_PAYLOAD_TRAILER, False,
                         trailer_for("CRC32C", b"other"))  # fmt: skip
    error = expect_error(decoder, body, "BadDigest")
    assert error.message.startswith("The CRC32C you specified")


@pytest.mark.parametrize("mode", [STREAMING_PAYLOAD_TRAILER,
                                  STREAMING_UNSIGNED_PAYLOAD_TRAILER])  # fmt: skip
def test_crc64nvme_trailer(mode: str) -> None:
    """The trailer the AWS SDK for C++ (pyarrow) sends; expected values from the reference."""
    signed = mode == STREAMING_PAYLOAD_TRAILER
    good = {"x-amz-checksum-crc64nvme": reference_b64("CRC64NVME", DATA)}
    decoder, body = make(mode, signed, good)
    assert decode(decoder, body, random_sizes(3, len(body))) == DATA
    assert decoder.trailers == good
    bad = {"x-amz-checksum-crc64nvme": reference_b64("CRC64NVME", DATA[:-1])}
    decoder, body = make(mode, signed, bad)
    error = expect_error(decoder, body, "BadDigest")
    assert error.message == "The CRC64NVME you specified did not match the calculated checksum."


def test_bad_trailer_signature() -> None:
    decoder, body = make(STREAMING_PAYLOAD_TRAILER, True, trailer_for("SHA1", DATA))
    start = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    tampered = body[:start] + b"0" * 64 + body[start + 64 :]
    expect_error(decoder, tampered, "SignatureDoesNotMatch")


def test_missing_trailer_signature() -> None:
    mode = STREAMING_PAYLOAD_TRAILER
    trailers = trailer_for("CRC32", DATA)
    _, signed_body = make(mode, True, trailers)
    unsigned_tail = encode_chunked([], None, trailers)[len(b"0\r\n") :]
    body = signed_body[: signed_body.rindex(b"\r\n", 0, signed_body.index(b"x-amz-checksum"))]
    decoder = ChunkedDecoder(doc_auth("cd" * 32, mode), mode, len(DATA), list(trailers))
    expect_error(decoder, body + b"\r\n" + unsigned_tail, "IncompleteBody")


def test_missing_declared_trailer() -> None:
    body = encode_chunked([b"abc"])
    decoder = ChunkedDecoder(None, STREAMING_UNSIGNED_PAYLOAD_TRAILER, 3,
                             ["x-amz-checksum-crc32"])  # fmt: skip
    expect_error(decoder, body, "IncompleteBody")


def test_undeclared_and_duplicate_trailers() -> None:
    mode = STREAMING_UNSIGNED_PAYLOAD_TRAILER
    trailers = trailer_for("CRC32", b"abc")
    body = encode_chunked([b"abc"], None, trailers)
    expect_error(ChunkedDecoder(None, mode, 3, []), body, "InvalidRequest")
    twice = body[:-2] + body[body.index(b"x-amz") :]
    expect_error(ChunkedDecoder(None, mode, 3, list(trailers)), twice, "InvalidRequest")


def test_trailer_signature_in_unsigned_mode_is_rejected() -> None:
    mode = STREAMING_PAYLOAD_TRAILER
    trailers = trailer_for("CRC32", b"abc")
    body = encode_chunked([b"abc"], doc_auth("cd" * 32, mode), trailers)
    unsigned_body = b"3\r\nabc\r\n0\r\n" + body[body.index(b"x-amz-checksum") :]
    decoder = ChunkedDecoder(None, STREAMING_UNSIGNED_PAYLOAD_TRAILER, 3, list(trailers))
    expect_error(decoder, unsigned_body, "InvalidRequest")


def test_trailers_in_a_mode_without_trailers() -> None:
    body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n"
    expect_error(ChunkedDecoder(AUTH, STREAMING_PAYLOAD, 3, []), body, "InvalidRequest")
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder(AUTH, STREAMING_PAYLOAD, 3, ["x-amz-checksum-crc32"])
    assert caught.value.code == "InvalidRequest"


def test_every_truncation_is_incomplete_body() -> None:
    data = b"hello, chunked world"
    body = encode_chunked(chunks_of(data, 7))
    tolerated = len(body) - 2  # cut exactly before the final blank line
    for cut in range(len(body)):
        decoder = ChunkedDecoder(None, UNSIGNED_PAYLOAD, None, [])
        if cut == tolerated:
            assert decode(decoder, body[:cut]) == data
            continue
        with pytest.raises(S3Error) as caught:
            decode(decoder, body[:cut])
        assert caught.value.code == "IncompleteBody", (cut, caught.value.message)


def test_truncated_signed_body() -> None:
    expect_error(doc_put_decoder(), DOC_PUT_BODY[:40000], "IncompleteBody")
    expect_error(doc_put_decoder(), b"", "IncompleteBody")


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b" 3\r\nabc\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
    ],
)
def test_bad_hex_size(body: bytes) -> None:
    expect_error(ChunkedDecoder(None, UNSIGNED_PAYLOAD, None, []), body, "InvalidRequest")


@pytest.mark.parametrize(
    "body",
    [
        b"3\r\nabcd\r\n0\r\n\r\n",  # data longer than declared: no CRLF where expected
        b"3\nabc\r\n0\r\n\r\n",  # bare LF
        b"3\r\nabc\r\n0\r\n\r\nextra",  # bytes after the end
        b"3\r\nabc\r\n0\r\n\r\n\r\n",
        b"3\r\n" + b"abc\r\n0\r\nnot-a-trailer\r\n\r\n",
    ],
)
def test_malformed_framing(body: bytes) -> None:
    decoder = ChunkedDecoder(None, STREAMING_UNSIGNED_PAYLOAD_TRAILER, None, [])
    expect_error(decoder, body, "InvalidRequest")


def test_oversize_chunk() -> None:
    body = encode_chunked([b"x" * 2048])
    decoder = ChunkedDecoder(None, UNSIGNED_PAYLOAD, None, [], max_chunk_bytes=1024)
    error = expect_error(decoder, body, "InvalidRequest")
    assert "1024" in error.message
    expect_error(ChunkedDecoder(None, UNSIGNED_PAYLOAD, None, []),
                 b"FFFFFFFFF\r\n", "InvalidRequest")  # fmt: skip


def test_overlong_line() -> None:
    body = b"3;" + b"x" * 10_000 + b"\r\nabc\r\n0\r\n\r\n"
    expect_error(ChunkedDecoder(None, UNSIGNED_PAYLOAD, None, []), body, "InvalidRequest")


@pytest.mark.parametrize("declared", [len(DATA) - 1, len(DATA) + 1, 0])
def test_decoded_length_mismatch(declared: int) -> None:
    auth = doc_auth("cd" * 32, STREAMING_PAYLOAD)
    body = encode_chunked(chunks_of(DATA, 4096), auth)
    decoder = ChunkedDecoder(auth, STREAMING_PAYLOAD, declared, [])
    expect_error(decoder, body, "IncompleteBody")


def test_mode_checks() -> None:
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder(None, STREAMING_PAYLOAD, 0, [])
    assert caught.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder(None, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", 0, [])
    assert caught.value.code == "NotImplemented"
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder(None, "STREAMING-SOMETHING-ELSE", 0, [])
    assert caught.value.code == "InvalidArgument"
    with pytest.raises(S3Error) as caught:
        ChunkedDecoder(None, STREAMING_UNSIGNED_PAYLOAD_TRAILER, 0,
                       ["x-amz-checksum-crc16"])  # fmt: skip
    assert caught.value.code == "InvalidRequest"


def test_random_corruption_only_raises_s3_errors() -> None:
    rng = random.Random(5)
    mode = STREAMING_PAYLOAD_TRAILER
    trailers = trailer_for("CRC32C", DATA[:3000])
    auth = doc_auth("cd" * 32, mode)
    body = encode_chunked(chunks_of(DATA[:3000], 1000), auth, trailers)
    for _ in range(300):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            index = rng.randrange(len(mutated))
            if action < 0.5:
                mutated[index] = rng.randrange(256)
            elif action < 0.75:
                del mutated[index]
            else:
                mutated.insert(index, rng.choice(b"\r\n;:=0aZ"))
        decoder = ChunkedDecoder(auth, mode, 3000, list(trailers))
        try:
            out = decode(decoder, bytes(mutated), random_sizes(rng.randrange(99), len(mutated)))
        except S3Error:
            continue
        assert out == DATA[:3000]  # a mutation that survives must not change the data
