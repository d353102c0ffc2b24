"""The replication wire format: round trips, and every way an incoming page is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import blake3
import pytest

from replication import protocol
from replication.protocol import ChangesPage, PeerInfo, ProtocolError
from storage.bucket_config import BUCKET_DOCUMENTS
from storage.manifest import ChunkRef, Kind, Manifest
from storage.sync.feed import Change

DIGEST = blake3.blake3(b"chunk").digest()


def manifest_bytes(digests: tuple[bytes, ...] = (DIGEST,)) -> bytes:
    chunks = tuple(ChunkRef(1, 16 + 100 * i, 5, d) for i, d in enumerate(digests))
    return Manifest(
        Kind.OBJECT, "b", "k", "null", 7, "node-a", 5 * len(chunks), "etag", 1, (), chunks
    ).encode()


def sample_page() -> ChangesPage:
    return ChangesPage(
        node_id="node-a",
        changes=[
            Change(seq=3, hlc=1 << 20, origin="node-a", op="bucket.create", bucket="b",
                   payload={"owner": "o", "nested": {"list": [1, "x", None]}}),
            Change(seq=5, hlc=(1 << 20) + 1, origin="node-c", op="object.put", bucket="b",
                   key="dir/ключ 🙂", version_id="null", size=5, etag='"abc"',
                   manifest=manifest_bytes()),
            Change(seq=6, hlc=(1 << 20) + 2, origin="node-a", op="object.delete", bucket="b",
                   key="k", version_id="v1"),
        ],
        last_seq=9,
        more=False,
        now_ms=1_700_000_000_000,
    )  # fmt: skip


def page_json(**overrides: Any) -> dict[str, Any]:
    document = protocol.page_to_json(sample_page())
    document.update(overrides)
    return document


def change_json(**overrides: Any) -> dict[str, Any]:
    document = protocol.change_to_json(sample_page().changes[1])
    document.update(overrides)
    return document


def refused(document: Any) -> str:
    with pytest.raises(ProtocolError) as caught:
        protocol.page_from_json(document)
    return str(caught.value)


def test_page_round_trip() -> None:
    page = sample_page()
    assert protocol.decode_page(protocol.encode_page(page)) == page


def test_page_json_is_documented_shape() -> None:
    document = json.loads(protocol.encode_page(sample_page()))
    assert set(document) == {"protocol", "node_id", "changes", "last_seq", "more", "now_ms"}
    assert document["protocol"] == protocol.PROTOCOL_VERSION == 1
    put = document["changes"][1]
    assert base64.b64decode(put["manifest"]) == manifest_bytes()
    assert document["changes"][0]["payload"]["owner"] == "o"


def test_empty_page_round_trip() -> None:
    page = ChangesPage("n", [], last_seq=0, more=False, now_ms=0)
    assert protocol.decode_page(protocol.encode_page(page)) == page


def test_info_round_trip() -> None:
    info = PeerInfo(node_id="node-b", last_seq=12, now_ms=99)
    assert protocol.info_from_json(protocol.info_to_json(info)) == info


def test_chunk_digests_from_manifests() -> None:
    other = blake3.blake3(b"other").digest()
    changes = [
        *sample_page().changes,
        Change(seq=8, hlc=9, origin="x", op="object.put", bucket="b", key="k2",
               manifest=manifest_bytes((DIGEST, other))),
    ]  # fmt: skip
    assert protocol.chunk_digests(changes) == {DIGEST, other}


def test_chunk_digests_refuse_a_bad_manifest() -> None:
    bad = bytearray(manifest_bytes())
    bad[10] ^= 1
    change = Change(seq=1, hlc=1, origin="x", op="object.put", bucket="b", manifest=bytes(bad))
    with pytest.raises(ProtocolError, match="bad manifest"):
        protocol.chunk_digests([change])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a JSON object"),
        (page_json(protocol=None), "'protocol' must be an integer"),
        (page_json(protocol=True), "'protocol' must be an integer"),
        (page_json(protocol=2), "speaks replication protocol 2"),
        (page_json(changes={}), "'changes' must be a list"),
        (page_json(changes=[change_json(seq=i + 1) for i in range(1001)]), "exceed the limit"),
        (page_json(last_seq=-1), "'last_seq' must be an integer"),
        (page_json(last_seq=1 << 63), "'last_seq' must be an integer"),
        (page_json(last_seq=5), "last_seq 5 is before change seq 6"),
        (page_json(more="no"), "'more' must be a boolean"),
        (page_json(more=None), "'more' must be a boolean"),
        (page_json(now_ms=1.5), "'now_ms' must be an integer"),
        (page_json(node_id="bad id"), "'node_id' must be a node id"),
        (page_json(node_id="x" * 65), "'node_id' must be a node id"),
        (page_json(changes=[change_json(seq=4), change_json(seq=4)]), "not in log order"),
        (page_json(changes=[change_json(seq=4), change_json(seq=2)]), "not in log order"),
        (page_json(changes=[7]), "change #0: expected a JSON object"),
    ],
)
def test_page_validation(document: Any, message: str) -> None:
    assert message in refused(document)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (change_json(extra=1), "unknown field(s) extra"),
        (change_json(op=None), "'op' must be an operation name"),
        (change_json(op="DROP TABLE"), "'op' must be an operation name"),
        (change_json(op="x" * 65), "'op' must be an operation name"),
        (change_json(bucket=None), "'bucket' is required"),
        (change_json(bucket=3), "'bucket' must be a string"),
        (change_json(bucket="b" * 256), "'bucket' is longer than 255 bytes"),
        (change_json(key="é" * 2049), "'key' is longer than 4096 bytes"),
        (change_json(key="\ud800"), "'key' is not valid Unicode"),
        (change_json(version_id=["v"]), "'version_id' must be a string"),
        (change_json(etag="e" * 256), "'etag' is longer than 255 bytes"),
        (change_json(seq=True), "'seq' must be an integer"),
        (change_json(seq="1"), "'seq' must be an integer"),
        (change_json(hlc=-5), "'hlc' must be an integer"),
        (change_json(size=2.0), "'size' must be an integer"),
        (change_json(origin=""), "'origin' must be a node id"),
        (change_json(origin="a/b"), "'origin' must be a node id"),
        (change_json(manifest=123), "'manifest' must be base64 text"),
        (change_json(manifest="not base64!"), "'manifest' is not valid base64"),
        (change_json(manifest=""), "empty manifest"),
        (change_json(manifest="A" * (protocol.MAX_MANIFEST_BYTES // 3 * 4 + 8)), "exceeds"),
        (change_json(payload=[1]), "'payload' must be a JSON object"),
        (change_json(payload={"v": "x" * protocol.MAX_PAYLOAD_BYTES}), "payload exceeds"),
    ],
)
def test_change_validation(change: dict[str, Any], message: str) -> None:
    assert message in refused(page_json(changes=[change]))


def test_absent_optional_fields_are_none() -> None:
    change = protocol.change_from_json(
        {"seq": 1, "hlc": 2, "origin": "n", "op": "bucket.delete", "bucket": "b"}
    )
    assert change == Change(seq=1, hlc=2, origin="n", op="bucket.delete", bucket="b")


def test_malformed_json_is_a_protocol_error() -> None:
    for data in (b"{", b"\xff\xfe", b'{"protocol": NaN}', b"[Infinity]"):
        with pytest.raises(ProtocolError, match="malformed JSON"):
            protocol.decode_page(data)


def test_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        protocol.loads(b" " * 11, limit=10)


@pytest.mark.parametrize("text", ["", "ab", "A" * 64, "g" * 64, "0" * 63, "0" * 65])
def test_hex_digest_is_64_lower_case_digits(text: str) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_hex_digest(text)


def test_hex_digest_round_trip() -> None:
    assert protocol.parse_hex_digest(DIGEST.hex()) == DIGEST


def test_digest_list() -> None:
    assert protocol.parse_digest_list([DIGEST.hex()], 5) == {DIGEST}
    with pytest.raises(ProtocolError):
        protocol.parse_digest_list([DIGEST.hex()] * 6, 5)
    with pytest.raises(ProtocolError):
        protocol.parse_digest_list([1], 5)
    with pytest.raises(ProtocolError):
        protocol.parse_digest_list("x", 5)


def test_info_validation() -> None:
    with pytest.raises(ProtocolError, match="protocol 9"):
        protocol.info_from_json({"protocol": 9, "node_id": "n", "last_seq": 0, "now_ms": 0})
    with pytest.raises(ProtocolError, match="'last_seq'"):
        protocol.info_from_json({"protocol": 1, "node_id": "n", "now_ms": 0})


def test_chunk_batch_frames_round_trip_and_reject_what_was_not_asked() -> None:
    first, second, absent = b"a" * 32, b"b" * 32, b"c" * 32
    body = b"".join(
        [
            protocol.encode_chunk_frame(first, b"one"),
            protocol.encode_chunk_frame(absent, None),
            protocol.encode_chunk_frame(second, b""),
        ]
    )
    assert protocol.decode_chunk_frames(body, [first, second, absent]) == {
        first: b"one",
        second: b"",
    }
    with pytest.raises(protocol.ProtocolError, match="not asked"):
        protocol.decode_chunk_frames(body, [first, absent])
    for cut in (1, 33, len(body) - 1):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_chunk_frames(body[: len(body) - cut], [first, second, absent])


def test_chunk_batch_requests_are_bounded_lists_of_digests() -> None:
    digest = "ab" * 32
    assert protocol.parse_chunk_batch_request({"digests": [digest]}) == [bytes.fromhex(digest)]
    too_many = {"digests": [digest] * (protocol.MAX_CHUNK_BATCH_DIGESTS + 1)}
    for bad in ({}, {"digests": []}, {"digests": [1]}, {"digests": ["xy"]}, too_many, []):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_chunk_batch_request(bad)


@pytest.mark.parametrize("op", [f"bucket.{name}" for name in BUCKET_DOCUMENTS])
def test_bucket_configuration_changes_cross_the_wire(op: str) -> None:
    """Every bucket document's change op must pass the peer's validation (an op the protocol
    refuses would stop replication from that peer at that change)."""
    change = Change(1, 2, "node-a", op, "b", payload={"value": "{}"})
    assert protocol.change_from_json(protocol.change_to_json(change)) == change


def test_object_acl_change_crosses_the_wire() -> None:
    change = Change(1, 2, "node-a", "object.acl", "b", "k", "v1", payload={"acl": "{}"})
    assert protocol.change_from_json(protocol.change_to_json(change)) == change


LOCK = {"compliance_until_ms": 5, "hold_set": {"node-a": 2}}


def test_lock_changes_cross_the_wire_with_their_manifest() -> None:
    """version.lock carries the locked version's manifest: its chunks are fetched like an
    object.put's, so a site that removed the version can bring it back."""
    changes = [
        Change(1, 9, "node-a", "version.lock", "b", "k", "null", manifest=manifest_bytes(),
               payload={"lock": LOCK}),
        Change(2, 10, "node-a", "object.put", "b", "k", "null", manifest=manifest_bytes(),
               payload={"lock": LOCK, "tags": [["t", "1"]]}),
        Change(3, 11, "node-a", "version.delete", "b", "k", "null",
               payload={"kind": "OBJECT", "bypass_governance": True}),
    ]  # fmt: skip
    for change in changes:
        assert protocol.change_from_json(protocol.change_to_json(change)) == change
    assert protocol.chunk_digests(changes[:1]) == {DIGEST}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (change_json(op="version.lock", key="k", version_id="v"), "bad object lock state"),
        (change_json(op="version.lock", key=None, payload={"lock": LOCK}), "needs 'key'"),
        (change_json(op="version.lock", version_id=None, payload={"lock": LOCK}), "needs 'key'"),
        (
            change_json(op="version.lock", key="k", version_id="v", payload={"lock": []}),
            "not a lock state",
        ),
        (
            change_json(op="version.lock", key="k", version_id="v", payload={"lock": LOCK, "x": 1}),
            "payload must be",
        ),
        (
            change_json(op="object.put", payload={"lock": {"governance": [1, "n", "soon"]}}),
            "governance must be",
        ),
        (
            change_json(op="object.put", payload={"lock": {"compliance_until_ms": -1}}),
            "in [0, 2^63)",
        ),
        (
            change_json(op="version.delete", payload={"bypass_governance": "true"}),
            "bypass_governance must be a boolean",
        ),
    ],
)
def test_malformed_lock_state_is_refused_with_the_page(
    change: dict[str, Any], message: str
) -> None:
    assert message in refused(page_json(changes=[change]))
