"""The deployment files (compose/, docs/lakenode.service) as data, for the tests that check them.

Shared by tests/unit/deploy/test_compose.py, tests/unit/deploy/test_systemd_unit.py and
tests/integration/test_deploy.py: where the files are, how to read them (compose
interpolation, Dockerfile instructions, systemd unit), which metric names PromQL in them
uses, and the metric names of the contract (docs/ops.md) they may use.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.cli.main import build_parser
from node.config import PEERS_ENV, SERVE_OPTIONS, ServeConfig, resolve_serve_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
PROMETHEUS_CONFIG = COMPOSE_DIR / "prometheus" / "prometheus.yml"
ALERT_RULES = COMPOSE_DIR / "prometheus" / "alerts.yml"
ALERT_TESTS = COMPOSE_DIR / "prometheus" / "alerts_test.yml"
DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "lakenode.json"
SYSTEMD_UNIT = ROOT / "docs" / "lakenode.service"
SYSTEMD_ENV = ROOT / "docs" / "lakenode.env.example"
SITES = ("site-a", "site-b")

# The metric names of the contract between the ops engineers (served at /_lakenode/metrics).
CONTRACT_GAUGES = frozenset(
    {
        "lakenode_repl_lag_seconds",
        "lakenode_repl_backlog_ops",
        "lakenode_repl_backlog_bytes",
        "lakenode_repl_last_success_timestamp_seconds",
        "lakenode_repl_clock_offset_seconds",
        "lakenode_repl_link_up",
        "lakenode_repl_validate_mismatches",
        "lakenode_repl_bootstrap_progress_ratio",
        "lakenode_s3_requests_in_flight",
        "lakenode_storage_live_bytes",
        "lakenode_storage_garbage_bytes",
        "lakenode_storage_segments",
        "lakenode_storage_segment_bytes",
        "lakenode_storage_objects",
        "lakenode_disk_free_bytes",
        "lakenode_disk_total_bytes",
        "lakenode_maintenance_mode",
        "lakenode_build_info",
        "lakenode_scrub_progress_ratio",
        "lakenode_scrub_corrupt_chunks",
        "lakenode_scrub_corrupt_objects",
        "lakenode_scrub_checked_bytes",
        "lakenode_scrub_last_finished_timestamp_seconds",
        "lakenode_gc_progress_ratio",
        "lakenode_gc_reclaimed_bytes",
        "lakenode_gc_segments_rewritten",
        "lakenode_gc_last_finished_timestamp_seconds",
    }
)
CONTRACT_COUNTERS = frozenset(
    {
        "lakenode_repl_apply_errors_total",
        "lakenode_repl_conflicts_total",
        "lakenode_repl_skew_rejections_total",
        "lakenode_repl_bytes_sent_total",
        "lakenode_repl_bytes_received_total",
        "lakenode_s3_requests_total",
        "lakenode_s3_received_bytes_total",
        "lakenode_s3_sent_bytes_total",
    }
)
CONTRACT_HISTOGRAMS = frozenset(
    {
        "lakenode_s3_request_duration_seconds",
        "lakenode_fsync_duration_seconds",
        "lakenode_commit_batch_size",
    }
)
PROMETHEUS_BUILTINS = frozenset({"up"})


def histogram_series(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


def queryable_names() -> set[str]:
    """Series names a query may select: gauges, counters, the series of each histogram."""
    names = set(CONTRACT_GAUGES | CONTRACT_COUNTERS | PROMETHEUS_BUILTINS)
    for histogram in CONTRACT_HISTOGRAMS:
        names |= histogram_series(histogram)
    return names


# --- PromQL -----------------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*(?![\w:])")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords,
    label names (inside braces or grouping clauses), durations or strings."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group(0).lower() not in _PROMQL_KEYWORDS:
            names.add(match.group(0))
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Prometheus would receive it (Grafana's variables filled in)."""
    return expr.replace("$__rate_interval", "1m").replace("$instance", ".*")


def promtool_or_skip() -> str:
    """The promtool binary; skipped without one, except on CI (CI=1/true) where it must exist."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("promtool is missing on CI: .ci/run installs the Debian package prometheus")
    pytest.skip("promtool is not installed (apt-get install prometheus); CI installs it")


# --- docker-compose.yml -----------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}`` and ``${NAME:-default}`` over every string of a loaded file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if env.get(name):
            return env[name]
        if default is None:
            raise ValueError(f"${{{name}}} has no default and is not set")
        return default

    resolved = _INTERPOLATION.sub(substitute, value)
    if "$" in resolved.replace("$$", ""):
        raise ValueError(f"unsupported interpolation in {value!r}")
    return resolved


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as `docker compose config` sees it with ``env`` (defaults if empty)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())  # SafeLoader resolves << merge keys
    loaded = interpolate(raw, env or {})
    assert isinstance(loaded, dict)
    return loaded


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """{container port: host port} from short-syntax ``[HOST_IP:]HOST:CONTAINER`` entries."""
    ports = {}
    for entry in service.get("ports", []):
        *_address, host, container = str(entry).split(":")
        ports[int(container)] = int(host)
    return ports


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: source} from short-syntax ``SOURCE:TARGET[:MODE]`` entries."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_mode = str(entry).split(":")
        mounts[target] = source
    return mounts


def flag_value(argv: list[str], flag: str) -> str:
    values = flag_values(argv, flag)
    assert len(values) == 1, f"{flag} given {len(values)} times in {argv}"
    return values[0]


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


# --- Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    arguments: str  # continuation lines joined

    def exec_form(self) -> list[str]:
        """The JSON array form of CMD, ENTRYPOINT or HEALTHCHECK ... CMD."""
        start = self.arguments.index("[")
        value = json.loads(self.arguments[start:])
        assert isinstance(value, list)
        return [str(item) for item in value]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def healthcheck_argv(test: list[str]) -> list[str]:
    """The command of a healthcheck in exec form: ``CMD`` then the argv."""
    assert test[0] == "CMD", f"healthcheck not in exec form: {test}"
    return test[1:]


# --- systemd unit -----------------------------------------------------------------------------


def systemd_unit(path: Path = SYSTEMD_UNIT) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}: a key may repeat in a unit."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            current = sections.setdefault(stripped.strip("[]"), {})
            continue
        assert current is not None, f"{path}: {line!r} outside a section"
        key, _, value = stripped.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exec_start_argv(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    (exec_start,) = unit["Service"]["ExecStart"]
    return shlex.split(exec_start.lstrip("-@:+!"))


def env_file_assignments(path: Path = SYSTEMD_ENV) -> tuple[dict[str, str], set[str]]:
    """({name: value} of the active lines, names of every line, commented-out ones too)."""
    active: dict[str, str] = {}
    mentioned: set[str] = set()
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"\s*(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line)
        if not match:
            continue
        mentioned.add(match.group(2))
        if match.group(1) is None:
            active[match.group(2)] = match.group(3).strip()
    return active, mentioned


# --- the node's real command line ---------------------------------------------------------------


def node_env_names() -> set[str]:
    """Every LAKENODE_* variable `lakenode serve` reads (node/config.py)."""
    return {env for _flag, env, *_rest in SERVE_OPTIONS if env} | {PEERS_ENV}


def resolve_serve(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServeConfig:
    """``lakenode ARGV`` through the real parser and config resolution, with exactly ``env``
    as the LAKENODE_* environment; a refusal fails the test with the node's one-line error."""
    for name in list(os.environ):
        if name.startswith("LAKENODE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser, subparsers = build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser.parse_args(argv)
            assert args.command == "serve", f"not a serve command: {argv}"
            return resolve_serve_config(subparsers["serve"], args)
    except SystemExit as exc:
        pytest.fail(f"lakenode {shlex.join(argv)} refused (exit {exc.code}): {errors.getvalue()}")
