"""Acceptance: a flipped byte on one site is found by scrub and repaired from its peer.

Method: two real nodes replicating (``--peer`` both ways); an object written on A reaches B.
B is stopped, one byte of that object's chunk is flipped in B's segment file, and
``lakenode scrub`` on B's data dir must name exactly that object (exit 1). ``scrub --repair
--peer <A>`` fetches the chunk from the running A by hash and rewrites it (exit 0); B, started
again, serves the original bytes; a second scrub is clean, and so is fsck.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from node.cli.main import main
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess, two_way_pair
from tests.integration.test_corruption import flip

LIMIT_S = 20.0


def wait_until_served(s3: Any, key: str, data: bytes) -> None:
    deadline = time.monotonic() + LIMIT_S
    while True:
        try:
            if s3.get_object(Bucket="rot", Key=key)["Body"].read() == data:
                return
        except ClientError:
            pass
        assert time.monotonic() < deadline, f"{key} did not replicate in {LIMIT_S} s"
        time.sleep(0.1)


def scrub(data_dir: Path, capsys: Any, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["scrub", "--data-dir", str(data_dir), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_scrub_finds_a_flipped_byte_and_repair_restores_it_from_the_peer(
    tmp_path: Path, capsys: Any
) -> None:
    a, b = two_way_pair(tmp_path)
    try:
        flip_and_repair(a, b, capsys)
    finally:
        a.stop()
        b.stop()


def flip_and_repair(a: NodeProcess, b: NodeProcess, capsys: Any) -> None:
    s3_a = make_client(a.url)
    s3_a.create_bucket(Bucket="rot")
    objects = {"victim": os.urandom(300_000), "healthy": os.urandom(200_000)}
    for key, data in objects.items():
        s3_a.put_object(Bucket="rot", Key=key, Body=data)
    for key, data in objects.items():
        wait_until_served(make_client(b.url), key, data)
    b.stop()
    segments = sorted((b.data_dir / "segments").glob("*.seg"))
    damaged = next(p for p in segments if objects["victim"][:64] in p.read_bytes())
    flip(damaged, damaged.read_bytes().index(objects["victim"][:64]) + 1234)

    code, found = scrub(b.data_dir, capsys)
    assert code == 1
    assert found["corrupt_objects"] == ["rot/victim version null"]

    credentials = ["--peer-access-key", ACCESS_KEY, "--peer-secret-key", SECRET_KEY]
    code, repaired = scrub(b.data_dir, capsys, "--repair", "--peer", a.url, *credentials)
    assert code == 0, repaired
    assert len(repaired["repaired_chunks"]) == 1 and repaired["unrepaired_objects"] == []

    b.start()
    for key, data in objects.items():
        assert make_client(b.url).get_object(Bucket="rot", Key=key)["Body"].read() == data
    b.stop()
    code, again = scrub(b.data_dir, capsys)
    assert code == 0 and again["corrupt_chunks"] == []
    assert len(again["unreferenced_damage"]) == 1  # the old copy, garbage until GC
    assert main(["fsck", "--data-dir", str(b.data_dir)]) == 0
