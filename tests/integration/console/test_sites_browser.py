"""The overview and Replication pages in a real Chromium, on the first of two sites that
replicate through fault proxies (tests/integration/sites.py): "in sync" after a validate,
the link going down and the backlog growing while the link is cut, the differences a
validate finds while only one direction works, and "in sync" again once the link is back.
Screenshots: overview, overview-cut, replication (docs/console.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.integration.console.browser import Browser
from tests.integration.console.console_http import eventually
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY
from tests.integration.sites import Sites

BUCKET = "console-sites"
HOSTILE_KEY = "<img src=x onerror=alert(1)>.txt"  # escaped wherever it is shown
CONFLICT_KEY = "<b>both-sites</b>"
PEER_ROW = 'tr[data-peer="site-1"]'


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    # Site 0 samples its charts every second (the default is 10 s).
    with Sites(tmp_path, 2, env={0: {"LAKENODE_CONSOLE_SAMPLE_S": "1"}}) as started:
        yield started


@pytest.fixture
def console_url(sites: Sites) -> str:
    """The browser opens site 0's console."""
    return sites.url(0)


def cell(browser: Browser, column: str) -> str:
    """A cell of site-1's row, read in one step: the page's script rebuilds the rows."""
    found = browser.driver.execute_script(
        "const cell = document.querySelector(arguments[0]); return cell && cell.textContent;",
        f'{PEER_ROW} td[data-column="{column}"]',
    )
    return str(found or "")


def wait_for_cell(browser: Browser, column: str, wanted: str) -> None:
    """Until site-1's row on the overview shows ``wanted`` (the page updates itself)."""
    browser.wait_for(lambda: wanted in cell(browser, column), f"{column} {wanted!r}", 45)


def validate_now(browser: Browser) -> str:
    browser.open("replication")
    browser.find("form.validate button[type=submit]").click()
    browser.wait_for_text("Last run from the console", ".validate-run")
    return browser.text(".validate-outcome")


def chart_points(browser: Browser, chart: str) -> int:
    found = browser.driver.execute_script(
        "const chart = document.getElementById(arguments[0]); return chart.dataset.points;", chart
    )
    return int(found or 0)


def test_two_sites_in_sync_cut_and_back(sites: Sites, browser: Browser) -> None:
    s3 = sites.client(0)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="first", Body=b"first")
    eventually(lambda: _has_key(sites, 1, "first"), "site-1 to replicate the first object", 30)

    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    assert "site-1: agree" in validate_now(browser)
    browser.open()
    wait_for_cell(browser, "state", "in sync")
    assert cell(browser, "link") == "up"
    # The charts: drawn from the samples (one a second here) by the page's script.
    browser.wait_for(lambda: chart_points(browser, "chart-requests") >= 3, "request samples")
    browser.wait_for(lambda: chart_points(browser, "chart-lag") >= 3, "lag samples")
    assert browser.find_all("#chart-requests svg polyline")
    assert "site-1" in browser.text("#chart-lag ul.legend")
    browser.screenshot("overview")

    # Cut both directions: site 0 sees the link down and its backlog for site-1 grow.
    sites.cut_both(0, 1)
    sites.client(1).put_object(Bucket=BUCKET, Key=CONFLICT_KEY, Body=b"older, from site 1")
    for index in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"cut-{index}", Body=b"x" * 2048)
    s3.put_object(Bucket=BUCKET, Key=HOSTILE_KEY, Body=b"hostile")
    s3.put_object(Bucket=BUCKET, Key=CONFLICT_KEY, Body=b"newer, from site 0")
    wait_for_cell(browser, "link", "down")
    wait_for_cell(browser, "backlog", "7 ops")
    wait_for_cell(browser, "state", "down")
    lag = cell(browser, "lag")
    browser.wait_for(lambda: cell(browser, "lag") != lag, "the lag to grow", 45)
    browser.screenshot("overview-cut")

    # Site 0 reaches site 1 again, site 1 still cannot pull: validate lists what differs.
    sites.restore(0, 1)
    outcome = validate_now(browser)
    assert "site-1: 7 differences" in outcome
    assert HOSTILE_KEY in browser.text(".differences")  # shown as text...
    assert browser.find_all(".differences img") == []  # ...never as markup
    assert "absent" in browser.text(".differences")

    # Both ways again: the backlog drains, and a validate finds both sites equal.
    sites.restore(1, 0)
    browser.open()
    wait_for_cell(browser, "backlog", "0 ops")
    wait_for_cell(browser, "link", "up")
    assert "site-1: agree" in validate_now(browser)
    browser.wait_for_text("in sync", '.peer-card[data-peer="site-1"] .state')
    # Site 1's older write of the same key lost on arrival here: a conflict, named as text.
    browser.wait_for_text(CONFLICT_KEY, "table.conflicts")
    assert browser.find_all("table.conflicts b") == []
    browser.driver.execute_script("window.scrollTo(0, 0)")  # from #validate: the top
    browser.screenshot("replication")
    browser.open()
    wait_for_cell(browser, "state", "in sync")
    assert "agree" in cell(browser, "last_validate")


def _has_key(sites: Sites, index: int, key: str) -> bool:
    try:
        sites.client(index).head_object(Bucket=BUCKET, Key=key)
    except ClientError:  # not there yet (no such bucket or key): keep polling
        return False
    return True
