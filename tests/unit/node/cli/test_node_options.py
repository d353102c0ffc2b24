"""The replication options of ``lakenode serve`` and ``lakenode repl pull``: parsing, env."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from node.cli.main import build_parser
from node.config import ServeConfig, parse_duration_ms, resolve_serve_config


@pytest.mark.parametrize(
    ("text", "ms"), [("500ms", 500), ("2s", 2000), ("1.5", 1500), (" 1m ", 60_000), (".25s", 250)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "2x", "-1s", "0", "0ms", "1.5.2", "2 days", "2d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration_ms(text)


def serve_config(argv: list[str]) -> ServeConfig:
    parser, subparsers = build_parser()
    return resolve_serve_config(subparsers["serve"], parser.parse_args(["serve", *argv]))


def test_serve_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LAKENODE_PEERS", "LAKENODE_PEER_ACCESS_KEY", "LAKENODE_PEER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LAKENODE_REPL_MAX_CLOCK_SKEW", raising=False)
    config = serve_config(["--data-dir", str(tmp_path), "--access-key", "ak", "--secret-key", "sk"])
    assert config.peers == ()
    assert config.repl_max_clock_skew == 1000
    assert config.peer_credentials == ("ak", "sk")


def test_serve_peers_and_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKENODE_PEERS", "http://ignored:1")
    monkeypatch.setenv("LAKENODE_REPL_MAX_CLOCK_SKEW", "250ms")
    config = serve_config([
        "--data-dir", str(tmp_path), "--peer", "http://a:1/", "--peer", "https://b",
        "--peer", "http://a:1", "--peer-access-key", "pk", "--peer-secret-key", "ps",
    ])  # fmt: skip
    assert config.peers == ("http://a:1", "https://b")
    assert config.peer_credentials == ("pk", "ps")
    assert config.repl_max_clock_skew == 250


def test_serve_peers_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAKENODE_PEERS", "http://a:1, http://b:2,")
    config = serve_config(["--data-dir", str(tmp_path)])
    assert config.peers == ("http://a:1", "http://b:2")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peer", "a:1"], "argument --peer: peer URL must be"),
        (["--peer", "http://a/path"], "must not have a path"),
        (["--peer-access-key", "pk"], "--peer-access-key/--peer-secret-key: give both"),
        (["--repl-max-clock-skew", "soon"], "argument --repl-max-clock-skew: invalid duration"),
    ],
)
def test_serve_errors_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as caught:
        serve_config(["--data-dir", str(tmp_path), *argv])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_repl_pull_requires_a_peer_and_a_data_dir(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from node.cli.main import main

    monkeypatch.delenv("LAKENODE_PEERS", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["repl", "pull", "--data-dir", str(tmp_path)])
    assert caught.value.code == 2 and "at least one peer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["repl", "pull", "--peer", "http://a:1", "--data-dir", f"{tmp_path}/none"])
    assert caught.value.code == 2 and "no lakenode data" in capsys.readouterr().err


def test_lifecycle_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LAKENODE_LIFECYCLE_INTERVAL", raising=False)
    monkeypatch.delenv("LAKENODE_LIFECYCLE_DAY_SECONDS", raising=False)
    base = ["--data-dir", str(tmp_path)]
    default = serve_config(base)
    assert (default.lifecycle_interval, default.lifecycle_day_ms) == (3_600_000, 86_400_000)
    monkeypatch.setenv("LAKENODE_LIFECYCLE_DAY_SECONDS", "2")
    config = serve_config([*base, "--lifecycle-interval", "500ms"])
    assert (config.lifecycle_interval, config.lifecycle_day_ms) == (500, 2000)
    for bad in (["--lifecycle-day-seconds", "0"], ["--lifecycle-interval", "0"]):
        with pytest.raises(SystemExit) as excinfo:
            serve_config([*base, *bad])
        assert excinfo.value.code == 2
