"""The maintenance commands' error contract: one line on stderr, exit 2 or 1, no traceback.

Beside a running node (its data dir is locked) the tools refuse until the admin channel
routes them to the node; a missing data dir and ``gc run`` without ``--force`` are usage
errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.cli import main
from tests.integration.nodeproc import NodeProcess


def test_a_running_node_locks_its_data_dir_against_the_tools(tmp_path: Path, capsys: Any) -> None:
    node = NodeProcess(tmp_path / "data").start()
    try:
        for command in (["fsck"], ["scrub"], ["gc", "plan"], ["mpu-gc", "plan"]):
            assert main([*command, "--data-dir", str(node.data_dir)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1
            assert "a node is running on" in err and "stop it first" in err
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
