"""The maintenance commands beside a running node, and their error contract.

Beside a running node (its data dir is locked) every command runs in that node through its
admin channel: the read-only ones at any time, the ones that move or delete data (``gc run``,
``mpu-gc run``, ``scrub --repair``) only in maintenance mode, else refused with one line.
GC in maintenance must reclaim space while the node keeps serving every object. Usage errors
exit 2 with one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from node.cli.main import main
from tests.integration.conftest import make_client
from tests.integration.nodeproc import NodeProcess


def cli(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_beside_a_running_node_the_tools_run_in_it(tmp_path: Path, capsys: Any) -> None:
    node = NodeProcess(tmp_path / "data", extra_args=["--segment-size", "256KiB"]).start()
    data_dir = ["--data-dir", str(node.data_dir)]
    try:
        s3 = make_client(node.url)
        s3.create_bucket(Bucket="ops")
        current = {}
        for _round in range(5):
            for n in range(4):
                current[f"k{n}"] = os.urandom(100_000)
                s3.put_object(Bucket="ops", Key=f"k{n}", Body=current[f"k{n}"])
        for command in (["fsck"], ["scrub"], ["gc", "plan"], ["mpu-gc", "plan"]):
            code, report = cli(capsys, *command, *data_dir)
            assert code == 0 and report["exit_code"] == 0, (command, report)

        for command in (["gc", "run", "--force"], ["mpu-gc", "run"]):
            assert main([*command, *data_dir]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "maintenance" in err

        assert main(["maintenance", "enable", *data_dir]) == 0
        capsys.readouterr()
        code, report = cli(capsys, "gc", "run", "--force", *data_dir)
        assert code == 0 and report["segments_rewritten"] > 0 and report["reclaimed_bytes"] > 0
        assert main(["maintenance", "disable", *data_dir]) == 0
        capsys.readouterr()
        for key, data in current.items():
            assert s3.get_object(Bucket="ops", Key=key)["Body"].read() == data
        code, report = cli(capsys, "fsck", *data_dir)
        assert code == 0 and report["clean"]
    finally:
        node.stop()
    node.start()  # and after a restart, from the rewritten segments alone
    try:
        for key, data in current.items():
            assert make_client(node.url).get_object(Bucket="ops", Key=key)["Body"].read() == data
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["fsck", "--data-dir", "{missing}"], "no lakenode data in"),
        (["gc", "run", "--data-dir", "{data}"], "dry run? use gc plan; gc run needs --force"),
        (["gc", "plan", "--threshold", "2", "--data-dir", "{data}"], "ratio from 0 to 1"),
        (["scrub", "--peer", "http://127.0.0.1:1", "--data-dir", "{data}"], "only with --repair"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    command: list[str], message: str, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "node_id").write_text("node-x\n")
    paths = {"{missing}": str(tmp_path / "missing"), "{data}": str(tmp_path / "data")}
    with pytest.raises(SystemExit) as exit_info:
        main([paths.get(arg, arg) for arg in command])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
