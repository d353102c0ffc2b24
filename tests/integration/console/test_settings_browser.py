"""The bucket settings page in a real headless Chromium: versioning and a lifecycle rule
through the forms (then the object browser's versions of a key), the policy editor's inline
JSON check (client side), and the screenshots of docs/console.md (``settings``,
``policy-error``, ``versions``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import make_client
from tests.integration.console.browser import Browser, chromium
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess


@pytest.fixture(scope="module")
def console_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("settings-browser") / "data")
    yield process.start()
    process.stop()


@pytest.fixture
def bucket(console_node: NodeProcess) -> str:
    name = f"photos-{secrets.token_hex(3)}"
    s3: Any = make_client(console_node.url)
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "team", "Value": "media"}]})
    return name


def submit(browser: Browser, button_css: str) -> None:
    """Click a form's button and wait until the next page replaced this one (so waits that
    follow never read an element of the page being left)."""
    from selenium.common.exceptions import StaleElementReferenceException

    page = browser.find("html")
    browser.find(button_css).click()

    def left() -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        return False

    browser.wait_for(left, f"the page after clicking {button_css!r}")


@pytest.fixture
def browser(console_node: NodeProcess) -> Iterator[Browser]:
    with chromium(console_node.url) as opened:
        opened.sign_in(ACCESS_KEY, SECRET_KEY)
        yield opened
        assert opened.console_errors() == []


def test_enable_versioning_and_add_a_lifecycle_rule(browser: Browser, bucket: str) -> None:
    browser.open("buckets")
    submit(browser, f'a.settings[href$="/buckets/{bucket}/settings"]')
    browser.wait_for_text("Unversioned", ".versioning-status")
    submit(browser, "button.enable-versioning")
    browser.wait_for_text("Enabled", ".versioning-status")
    browser.find(".lifecycle-form input[name=rule_id]").send_keys("expire-logs")
    browser.find(".lifecycle-form input[name=prefix]").send_keys("logs/")
    browser.find(".lifecycle-form input[name=expiration_days]").send_keys("30")
    browser.find(".lifecycle-form input[name=noncurrent_days]").send_keys("90")
    browser.find(".lifecycle-form input[name=abort_days]").send_keys("7")
    submit(browser, ".lifecycle-form button[type=submit]")
    browser.wait_for_text("expire-logs", "table.lifecycle-rules")
    row = browser.text("table.lifecycle-rules tbody tr")
    assert "prefix logs/" in row and "30 days" in row and "90 days" in row and "7 days" in row
    assert "Enabled" in browser.text(".versioning-status")
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.screenshot("settings")
    _versions_are_listed(browser, bucket)


def _versions_are_listed(browser: Browser, bucket: str) -> None:
    """With versioning on, two writes and a delete of one key show as three rows."""
    s3: Any = make_client(browser.base_url)
    first = s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"two")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="notes.txt")
    browser.open(f"browse/{bucket}")
    submit(browser, "p.view-toggle a")
    browser.wait_for(lambda: len(browser.find_all("table.versions tr.version")) == 2, "2 versions")
    versions = [row.text for row in browser.find_all("table.versions tr.version")]
    assert any(second in text for text in versions) and any(first in text for text in versions)
    marker = browser.text("table.versions tr.marker")
    assert "latest" in marker  # the delete marker is the current version now
    browser.screenshot("versions")


def test_the_policy_editor_shows_json_errors_as_one_types(browser: Browser, bucket: str) -> None:
    browser.open(f"buckets/{bucket}/settings")
    editor = browser.find("#policy-editor")
    editor.send_keys('{\n"Version": "2012-10-17",\n"Statement": [\n{"Effect": "Allow",}\n]\n}')
    browser.wait_for_text("Not valid JSON", "#policy-status")
    status = browser.text("#policy-status")
    assert "line 4, column" in status, status
    assert editor.get_attribute("aria-invalid") == "true"
    url = browser.driver.current_url
    browser.find("#policy button[type=submit]").click()  # refused in the page: nothing sent
    assert browser.driver.current_url == url
    assert "Not valid JSON" in browser.text("#policy-status")
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.screenshot("policy-error")
    editor.clear()
    editor.send_keys('{"Version": "2012-10-17", "Statement": []}')
    browser.wait_for_text("Valid JSON.", "#policy-status")
