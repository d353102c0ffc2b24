"""compose/: the compose file, Dockerfile, Prometheus config and rules, Grafana provisioning.

Checked against the node itself: every command line goes through lakenode's real parser and
config resolution, the scrape targets are the sites' service names and --listen ports, and
every PromQL expression uses only metric names of the contract. promtool validates the
Prometheus files and runs the alert unit tests (compose/prometheus/alerts_test.yml).
"""

from __future__ import annotations

import json
import posixpath
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from node.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from tests.deployfiles import (
    ALERT_RULES,
    ALERT_TESTS,
    COMPOSE_DIR,
    CONTRACT_HISTOGRAMS,
    DASHBOARD,
    DOCKERFILE,
    PROMETHEUS_CONFIG,
    ROOT,
    SITES,
    alert_rules,
    dashboard_exprs,
    dockerfile_instructions,
    flag_value,
    grafana_to_promql,
    healthcheck_argv,
    histogram_series,
    load_compose,
    node_env_names,
    promql_metric_names,
    promtool_or_skip,
    published_ports,
    queryable_names,
    resolve_serve,
    volume_mounts,
)

HEALTH_PATH = "/_lakenode/health"
METRICS_PATH = "/_lakenode/metrics"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def site_env(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service.get("environment", {}).items()}


def container_path(mounts: dict[str, str], host_file: Path) -> str:
    """Where a file of compose/ appears in a container, through the bind mounts given."""
    for target, source in mounts.items():
        source_path = (COMPOSE_DIR / source).resolve()
        if host_file == source_path:
            return target
        if host_file.is_relative_to(source_path):
            return posixpath.join(target, host_file.relative_to(source_path).as_posix())
    raise AssertionError(f"{host_file} is not mounted: {mounts}")


# --- the compose file -------------------------------------------------------------------------


def test_services_are_two_sites_prometheus_and_grafana(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*SITES, "prometheus", "grafana"}


@pytest.mark.parametrize("site", SITES)
def test_site_command_is_accepted_by_the_real_cli(
    compose: dict[str, Any], site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose["services"][site]
    env = site_env(service)
    assert set(env) <= node_env_names(), "an environment variable the node does not read"
    config = resolve_serve(service["command"], env, monkeypatch)
    assert config.node_id == site
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert str(config.data_dir) == "/data"
    # The documented defaults are the node's development credentials...
    assert (config.access_key, config.secret_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    # ...and the environment replaces them (the node reads them, not the compose file).
    custom = load_compose({"LAKENODE_ACCESS_KEY": "ops-key", "LAKENODE_SECRET_KEY": "ops-s3cr3t"})
    service = custom["services"][site]
    config = resolve_serve(service["command"], site_env(service), monkeypatch)
    assert (config.access_key, config.secret_key) == ("ops-key", "ops-s3cr3t")


def test_sites_replicate_both_ways_in_one_region(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    configs = {site: resolve_serve(services[site]["command"], site_env(services[site]), monkeypatch)
               for site in SITES}  # fmt: skip
    for site, other in (SITES, SITES[::-1]):
        assert configs[site].peers == (f"http://{other}:{configs[other].port}",)
    assert configs[SITES[0]].region == configs[SITES[1]].region
    assert configs[SITES[0]].node_id != configs[SITES[1]].node_id


def test_site_data_dirs_are_distinct_named_volumes(compose: dict[str, Any]) -> None:
    volumes_used = []
    for site in SITES:
        service = compose["services"][site]
        data_dir = flag_value(service["command"], "--data-dir")
        source = volume_mounts(service)[data_dir]
        assert source in compose["volumes"], f"{site}: {source} is not a named volume"
        volumes_used.append(source)
    assert len(set(volumes_used)) == len(SITES)


def test_every_named_volume_is_declared_and_used(compose: dict[str, Any]) -> None:
    named = set()
    for service in compose["services"].values():
        for source in volume_mounts(service).values():
            if not source.startswith((".", "/")):
                named.add(source)
            else:
                assert (COMPOSE_DIR / source).exists(), f"bind mount source {source} is missing"
    assert named == set(compose["volumes"])


def test_sites_publish_their_listen_port_on_9001_and_9002(compose: dict[str, Any]) -> None:
    host_ports = {}
    for site in SITES:
        service = compose["services"][site]
        port = int(flag_value(service["command"], "--listen").rsplit(":", 1)[1])
        host_ports[site] = published_ports(service)[port]
    assert host_ports == {"site-a": 9001, "site-b": 9002}
    # Loopback unless told otherwise: the defaults are development credentials.
    assert all(
        str(entry).startswith("127.0.0.1:")
        for service in compose["services"].values()
        for entry in service.get("ports", [])
    )


@pytest.mark.parametrize("site", SITES)
def test_site_healthcheck_probes_the_health_endpoint_on_the_listen_port(
    compose: dict[str, Any], site: str
) -> None:
    service = compose["services"][site]
    port = flag_value(service["command"], "--listen").rsplit(":", 1)[1]
    argv = healthcheck_argv(service["healthcheck"]["test"])
    assert argv[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}{HEALTH_PATH}" in argv[2]


def test_sites_build_the_image_of_compose_dockerfile(compose: dict[str, Any]) -> None:
    for site in SITES:
        build = compose["services"][site]["build"]
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


# --- Prometheus -------------------------------------------------------------------------------


def lakenode_scrape_job() -> dict[str, Any]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "lakenode"]
    assert isinstance(job, dict)
    return job


def test_prometheus_scrapes_each_site_on_its_listen_port(compose: dict[str, Any]) -> None:
    job = lakenode_scrape_job()
    assert job["metrics_path"] == METRICS_PATH
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    expected = set()
    for site in SITES:
        port = flag_value(compose["services"][site]["command"], "--listen").rsplit(":", 1)[1]
        expected.add(f"{site}:{port}")
    assert targets == expected


def test_prometheus_container_finds_its_config_and_rules(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    mounts = volume_mounts(service)
    config_path = container_path(mounts, PROMETHEUS_CONFIG.resolve())
    assert f"--config.file={config_path}" in service["command"]
    rule_files = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]
    # Relative rule files are read from the config file's directory.
    in_container = {posixpath.join(posixpath.dirname(config_path), name) for name in rule_files}
    assert in_container == {container_path(mounts, ALERT_RULES.resolve())}
    storage = [flag for flag in service["command"] if flag.startswith("--storage.tsdb.path=")]
    assert [flag.split("=", 1)[1] for flag in storage] == [
        target for target, source in mounts.items() if source in compose["volumes"]
    ]


def test_promtool_check_config_and_rules() -> None:
    promtool = promtool_or_skip()
    for args in (["check", "config", PROMETHEUS_CONFIG], ["check", "rules", ALERT_RULES]):
        result = subprocess.run([promtool, *map(str, args)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_alert_unit_tests_pass() -> None:
    promtool = promtool_or_skip()
    result = subprocess.run(
        [promtool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired, silent = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert fired == names
    assert silent == names


EXPECTED_ALERTS = {
    "LakenodeDown",
    "LakenodeReplicationLagHigh",
    "LakenodeReplicationBacklogGrowing",
    "LakenodeReplicationLinkDown",
    "LakenodeClockSkewRejections",
    "LakenodeScrubFindings",
    "LakenodeDiskNearlyFull",
    "LakenodeApplyErrors",
}


def test_alert_rules_are_the_documented_set_with_severity_and_texts() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_alert_rules_use_only_contract_metric_names() -> None:
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        assert names <= queryable_names(), f"{rule['alert']}: unknown {names - queryable_names()}"


# --- Grafana ----------------------------------------------------------------------------------


def test_dashboard_queries_use_only_contract_metric_names() -> None:
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= queryable_names(), f"unknown {names - queryable_names()} in {expr!r}"
        used |= names
    # What the issue asks the dashboard to show: requests, latency, storage, lag and backlog.
    assert {
        "lakenode_s3_requests_total",
        *histogram_series("lakenode_s3_request_duration_seconds"),
        "lakenode_storage_live_bytes",
        "lakenode_disk_free_bytes",
        "lakenode_repl_lag_seconds",
        "lakenode_repl_backlog_ops",
    } - used == set()


def test_dashboard_queries_per_peer_keep_the_peer_label() -> None:
    for expr in dashboard_exprs():
        if "lakenode_repl_" in expr and "by (" in expr:
            assert "peer" in expr.split("by (", 1)[1].split(")", 1)[0], expr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses them (as recording rules) with Grafana's variables filled in."""
    promtool = promtool_or_skip()
    rules = [{"record": f"dashboard:query{i}", "expr": grafana_to_promql(expr)}
             for i, expr in enumerate(dashboard_exprs())]  # fmt: skip
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_prometheus_service_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = volume_mounts(grafana)
    provisioning = COMPOSE_DIR / "grafana" / "provisioning"
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    (prometheus,) = [source for source in datasources if source["type"] == "prometheus"]
    url = urlsplit(prometheus["url"])
    assert url.hostname == "prometheus"
    assert url.port in published_ports(compose["services"]["prometheus"])
    assert container_path(mounts, (provisioning / "datasources").resolve()) == (
        "/etc/grafana/provisioning/datasources"
    )
    assert container_path(mounts, (provisioning / "dashboards").resolve()) == (
        "/etc/grafana/provisioning/dashboards"
    )
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    dashboard_in_container = container_path(mounts, DASHBOARD.resolve())
    assert posixpath.dirname(dashboard_in_container) in {p["options"]["path"] for p in providers}
    home = grafana["environment"].get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home == dashboard_in_container
    dashboard = json.loads(DASHBOARD.read_text())
    data_sources = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    assert data_sources == {prometheus["uid"]}


def test_dashboard_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


# --- the metric-name extractor the checks above rely on ----------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="lakenode"} == 0', {"up"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~"4..|5.."}[$__interval])))',
            {"a_bucket"},
        ),
        ("a / b < 0.1", {"a", "b"}),
        ("x > 1000 and deriv(x[15m]) > 0", {"x"}),
        ('increase(c_total{reason!="unavailable"}[15m]) > 2', {"c_total"}),
        ("time() - ts offset 5m", {"ts"}),
        ('sum without (instance) (g) * on (peer) group_left (version) info{a="by (x)"}',
         {"g", "info"}),
    ],
)  # fmt: skip
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_builds_in_two_stages_on_python_311_slim() -> None:
    instructions = dockerfile_instructions()
    stages = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert len(stages) == 2
    (base,) = [i.arguments for i in instructions if i.keyword == "ARG"]
    assert base == "PYTHON_IMAGE=python:3.11-slim"
    assert all(stage.startswith("${PYTHON_IMAGE} AS ") for stage in stages)
    # The runtime stage takes only the installed virtualenv from the build stage.
    starts = [n for n, instruction in enumerate(instructions) if instruction.keyword == "FROM"]
    runtime = instructions[starts[1] :]
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/lakenode /opt/lakenode"]


def test_dockerfile_copies_every_package_the_wheel_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in includes}
    copied = set()
    for instruction in dockerfile_instructions():
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            *sources, _destination = instruction.arguments.split()
            copied |= set(sources)
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    readme = pyproject["project"]["readme"]
    assert packages | {"pyproject.toml", readme} <= copied


def test_dockerfile_runs_as_lakenode_10001_with_a_data_volume() -> None:
    by_keyword: dict[str, list[str]] = {}
    for instruction in dockerfile_instructions():
        by_keyword.setdefault(instruction.keyword, []).append(instruction.arguments)
    assert by_keyword["USER"] == ["10001:10001"]
    useradd = " ".join(by_keyword["RUN"])
    assert "--uid 10001" in useradd and "--gid 10001" in useradd
    assert "useradd" in useradd and " lakenode " in useradd
    assert "chown lakenode:lakenode /data" in useradd
    assert by_keyword["VOLUME"] == ["/data"]
    assert by_keyword["EXPOSE"] == ["9000"]


def test_dockerfile_command_is_accepted_by_the_real_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    instructions = {i.keyword: i for i in dockerfile_instructions()}
    entrypoint = instructions["ENTRYPOINT"].exec_form()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["lakenode"] and "lakenode" in scripts
    command = instructions["CMD"].exec_form()
    keys = {"LAKENODE_ACCESS_KEY": "image-key", "LAKENODE_SECRET_KEY": "image-secret"}
    config = resolve_serve(command, keys, monkeypatch)
    assert (str(config.data_dir), config.host, config.port) == ("/data", "0.0.0.0", 9000)
    health = instructions["HEALTHCHECK"].arguments
    probe = instructions["HEALTHCHECK"].exec_form()
    assert probe[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{config.port}{HEALTH_PATH}" in probe[2]
    assert health.split("CMD", 1)[0].split() == [
        "--interval=10s", "--timeout=5s", "--start-period=20s", "--retries=3"
    ]  # fmt: skip


def test_dockerignore_keeps_out_local_state_but_not_the_sources() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", "data", "tests/js/node_modules", ".git"} <= set(patterns)
    for needed in ("node", "api", "storage", "replication", "pyproject.toml", "README.md"):
        assert needed not in patterns


def test_histograms_are_not_queried_by_their_bare_name() -> None:
    bare = set(CONTRACT_HISTOGRAMS)
    for expr in dashboard_exprs() + [rule["expr"] for rule in alert_rules()]:
        assert not promql_metric_names(expr) & bare, expr
    assert not bare & queryable_names()
