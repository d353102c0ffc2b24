"""Decoder for ``Content-Encoding: aws-chunked`` request bodies.

:class:`ChunkedDecoder` turns the framed body into the object's bytes while it streams,
checking everything the framing promises:

* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: ``hex-size;chunk-signature=sig\\r\\n`` + data +
  ``\\r\\n`` per chunk, each signature chained on the previous one (seed: the request's
  signature), the final zero-length chunk signed too.
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, then trailer lines and an
  ``x-amz-trailer-signature`` line chained on the final chunk's signature.
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``: ``hex-size\\r\\n`` framing, no signatures, trailers.
* Any other payload hash (``UNSIGNED-PAYLOAD``, or a hex digest the caller checks over the
  raw body itself): unsigned framing, trailers allowed.

Every ``x-amz-checksum-*`` trailer named in ``x-amz-trailer`` is computed over the decoded
data and compared with the received value. Memory stays bounded by the input piece plus one
short line: data is yielded as it arrives and chunk hashes are incremental. A signature is
checked when its chunk ends, i.e. possibly after that chunk's data has been yielded; that is
safe because the consumer commits nothing until :meth:`ChunkedDecoder.decode` finishes.

Choices where AWS documents nothing:

* truncated input (EOF inside a line or chunk, no final chunk, a declared trailer or the
  trailer signature never sent) and a total differing from ``x-amz-decoded-content-length``
  -> ``IncompleteBody``; malformed framing (bad hex, missing CRLF, oversize chunk or line,
  undeclared or duplicate trailer, bytes after the end) -> ``InvalidRequest``.
* The blank line ending the trailer section may be missing at EOF (the data is complete).
* One blank line between the final chunk and the trailers is tolerated, as AWS's own
  trailer example shows one.

:func:`encode_chunked` is the client side, for tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from enum import Enum, auto
from typing import Final

from api.checksums import Checksum, algorithm_from_header, new_checksum, verify_checksum
from api.errors import S3Error
from api.sigv4 import AuthContext, signatures_equal
from api.sigv4_canonical import (
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    chunk_signature,
    chunk_signature_from_digest,
    trailer_signature,
)

MAX_LINE_BYTES: Final = 4096  # a chunk header is ~90 bytes; this bounds the line buffer
TRAILER_SIGNATURE: Final = "x-amz-trailer-signature"
_SIGNED_MODES: Final = frozenset({STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER})
_KNOWN_STREAMING: Final = frozenset(
    {STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER}
)
_CHUNK_SIZE: Final = re.compile(rb"[0-9a-fA-F]{1,16}")
_CHUNK_SIGNATURE: Final = re.compile(rb"chunk-signature=([0-9a-f]{64})")


class _State(Enum):
    HEADER = auto()  # reading "hex-size[;ext]\r\n"
    DATA = auto()  # passing chunk data through
    DATA_END = auto()  # expecting the "\r\n" after chunk data
    TRAILER = auto()  # after the final chunk: trailer lines until a blank line
    DONE = auto()  # nothing more may follow


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}")


def _incomplete(detail: str) -> S3Error:
    return S3Error("IncompleteBody", f"The request body terminated unexpectedly: {detail}")


class ChunkedDecoder:
    """Decodes one aws-chunked body; ``trailers`` is filled once :meth:`decode` completes."""

    def __init__(
        self,
        auth: AuthContext | None,
        payload_hash: str,
        decoded_length: int | None,
        declared_trailers: list[str],
        max_chunk_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        _check_mode(auth, payload_hash)
        self.trailers: dict[str, str] = {}
        self._auth = auth if payload_hash in _SIGNED_MODES else None
        self._trailer_signed = payload_hash == STREAMING_PAYLOAD_TRAILER
        self._trailers_allowed = payload_hash != STREAMING_PAYLOAD
        self._declared = [name.strip().lower() for name in declared_trailers if name.strip()]
        if self._declared and not self._trailers_allowed:
            raise S3Error("InvalidRequest", f"x-amz-trailer is not allowed with {payload_hash}.")
        self._checksums = _checksums_for(self._declared)
        self._decoded_length = decoded_length
        self._max_chunk = max_chunk_bytes
        self._state = _State.HEADER
        self._line = bytearray()
        self._remaining = 0
        self._total = 0
        self._chunk_hash = hashlib.sha256()
        self._chunk_sig = ""
        self._previous_sig = auth.seed_signature if auth is not None else ""
        self._trailer_sig_seen = False
        self._separator_skipped = False

    async def decode(self, source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Yield the decoded data of ``source``; raises S3Error for any bad input."""
        async for piece in source:
            for data in self._feed(bytes(piece)):
                yield data
        self._finish()

    # -- framing ------------------------------------------------------------------------

    def _feed(self, piece: bytes) -> Iterator[bytes]:
        pos = 0
        while pos < len(piece):
            if self._state is _State.DATA:
                end = min(len(piece), pos + self._remaining)
                data = piece if pos == 0 and end == len(piece) else piece[pos:end]
                self._take_data(data)
                yield data
                pos = end
                if self._remaining == 0:
                    self._end_chunk()
            elif self._state is _State.DONE:
                raise _malformed("data after the end of the body.")
            else:
                pos, line = self._read_line(piece, pos)
                if line is not None:
                    self._on_line(line)

    def _read_line(self, piece: bytes, pos: int) -> tuple[int, bytes | None]:
        """Accumulate up to the next LF; return the new position and the line, if complete."""
        newline = piece.find(b"\n", pos)
        end = len(piece) if newline < 0 else newline + 1
        if len(self._line) + (end - pos) > MAX_LINE_BYTES:
            raise _malformed(f"a line longer than {MAX_LINE_BYTES} bytes.")
        self._line += piece[pos:end]
        if newline < 0:
            return end, None
        line = bytes(self._line)
        self._line.clear()
        if not line.endswith(b"\r\n"):
            raise _malformed("a line not terminated by CRLF.")
        return end, line[:-2]

    def _on_line(self, line: bytes) -> None:
        if self._state is _State.HEADER:
            self._start_chunk(line)
        elif self._state is _State.DATA_END:
            if line:
                raise _malformed("chunk data longer than its declared size.")
            self._state = _State.HEADER
        else:
            self._on_trailer_line(line)

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise _malformed(f"invalid chunk size {size_text[:32]!r}.")
        size = int(size_text, 16)
        if size > self._max_chunk:
            raise _malformed(f"a chunk of {size} bytes exceeds the limit of {self._max_chunk}.")
        if self._auth is not None:
            match = _CHUNK_SIGNATURE.fullmatch(extension)
            if match is None:
                raise _malformed("a chunk without a valid chunk-signature.")
            self._chunk_sig = match.group(1).decode("ascii")
            self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size == 0:
            self._end_chunk()
            self._state = _State.TRAILER
        else:
            self._state = _State.DATA

    def _take_data(self, data: bytes) -> None:
        self._remaining -= len(data)
        self._total += len(data)
        if self._decoded_length is not None and self._total > self._decoded_length:
            raise _incomplete("more data than x-amz-decoded-content-length.")
        if self._auth is not None:
            self._chunk_hash.update(data)
        for checksum in self._checksums.values():
            checksum.update(data)

    def _end_chunk(self) -> None:
        """Check the signature of the chunk that just ended (signed modes only)."""
        self._state = _State.DATA_END
        auth = self._auth
        if auth is None:
            return
        expected = chunk_signature_from_digest(
            auth.signing_key,
            auth.amz_date,
            auth.scope,
            self._previous_sig,
            self._chunk_hash.hexdigest(),
        )
        if not signatures_equal(expected, self._chunk_sig):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the one you provided.",
            )
        self._previous_sig = self._chunk_sig

    # -- trailers -----------------------------------------------------------------------

    def _on_trailer_line(self, line: bytes) -> None:
        if not line:
            if self._declared and not self.trailers and not self._separator_skipped:
                self._separator_skipped = True  # AWS's example puts a blank line here
            else:
                self._state = _State.DONE
            return
        if not self._trailers_allowed:
            raise _malformed("trailers after the final chunk of a payload without trailers.")
        if self._trailer_sig_seen:
            raise _malformed(f"a trailer after {TRAILER_SIGNATURE}.")
        name_bytes, colon, value_bytes = line.partition(b":")
        if not colon:
            raise _malformed("a trailer line without ':'.")
        name = name_bytes.decode("utf-8", "replace").strip().lower()
        value = value_bytes.decode("utf-8", "replace").strip()
        if name == TRAILER_SIGNATURE:
            self._check_trailer_signature(value)
        elif name not in self._declared:
            raise _malformed(f"trailer {name!r} was not declared in x-amz-trailer.")
        elif name in self.trailers:
            raise _malformed(f"trailer {name!r} sent twice.")
        else:
            self.trailers[name] = value

    def _check_trailer_signature(self, value: str) -> None:
        auth = self._auth
        if not self._trailer_signed or auth is None:
            raise _malformed(f"{TRAILER_SIGNATURE} in a payload whose trailers are unsigned.")
        self._trailer_sig_seen = True
        expected = trailer_signature(
            auth.signing_key, auth.amz_date, auth.scope, self._previous_sig, self.trailers
        )
        if not signatures_equal(expected, value):
            raise S3Error(
                "SignatureDoesNotMatch",
                "The trailer signature we calculated does not match the one you provided.",
            )

    # -- end of input -------------------------------------------------------------------

    def _finish(self) -> None:
        if self._state not in (_State.TRAILER, _State.DONE) or self._line:
            raise _incomplete("the final chunk is missing or cut short.")
        missing = [name for name in self._declared if name not in self.trailers]
        if missing:
            raise _incomplete(f"declared trailer {', '.join(missing)} not received.")
        if (
            self._trailer_signed
            and (self.trailers or self._declared)
            and not (self._trailer_sig_seen)
        ):
            raise _incomplete(f"{TRAILER_SIGNATURE} not received.")
        if self._decoded_length is not None and self._total != self._decoded_length:
            raise _incomplete(
                f"received {self._total} bytes, x-amz-decoded-content-length says "
                f"{self._decoded_length}."
            )
        for name, checksum in self._checksums.items():
            verify_checksum(checksum, self.trailers[name])


def _check_mode(auth: AuthContext | None, payload_hash: str) -> None:
    if payload_hash.startswith("STREAMING-AWS4-ECDSA"):
        raise S3Error("NotImplemented", "SigV4a (ECDSA) streaming payloads are not supported.")
    if payload_hash.startswith("STREAMING-") and payload_hash not in _KNOWN_STREAMING:
        raise S3Error("InvalidArgument", f"Unknown x-amz-content-sha256 value {payload_hash!r}.")
    if payload_hash in _SIGNED_MODES and auth is None:
        raise S3Error("InvalidRequest", f"{payload_hash} requires a signed request.")


def _checksums_for(declared: list[str]) -> dict[str, Checksum]:
    """A running checksum per declared x-amz-checksum-* trailer (unsupported -> error)."""
    checksums: dict[str, Checksum] = {}
    for name in declared:
        algorithm = algorithm_from_header(name)
        if algorithm is not None:
            checksums[name] = new_checksum(algorithm)
    return checksums


def encode_chunked(
    chunks: Iterable[bytes],
    auth: AuthContext | None = None,
    trailers: Mapping[str, str] | None = None,
) -> bytes:
    """Client side: frame ``chunks`` as aws-chunked, signed when ``auth`` is given.

    ``auth`` carries the client's signing key, date, scope and seed (its own request
    signature). With ``trailers`` and ``auth`` the trailers are signed as well.
    """
    out = bytearray()
    previous = auth.seed_signature if auth is not None else ""
    for chunk in [*(c for c in chunks if c), b""]:
        out += f"{len(chunk):x}".encode()
        if auth is not None:
            previous = chunk_signature(auth.signing_key, auth.amz_date, auth.scope, previous, chunk)
            out += f";chunk-signature={previous}".encode()
        out += b"\r\n" + chunk + (b"\r\n" if chunk else b"")
    for name, value in (trailers or {}).items():
        out += f"{name}:{value}\r\n".encode()
    if trailers and auth is not None:
        sig = trailer_signature(auth.signing_key, auth.amz_date, auth.scope, previous, trailers)
        out += f"{TRAILER_SIGNATURE}:{sig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)
