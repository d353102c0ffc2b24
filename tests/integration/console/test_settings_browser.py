"""The bucket settings page in a real headless Chromium: versioning and a lifecycle rule
through the forms (then the object browser's versions of a key), the policy editor's inline
JSON check (client side), and the screenshots of docs/console.md (``settings``,
``policy-error``, ``versions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.console.browser import Browser
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY


@pytest.fixture
def bucket(new_bucket: Callable[..., str], s3: Any) -> str:
    name = new_bucket("photos")
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "team", "Value": "media"}]})
    return name


@pytest.fixture
def browser(browser: Browser) -> Browser:
    """Signed in with the root key."""
    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    return browser


def test_enable_versioning_and_add_a_lifecycle_rule(browser: Browser, s3: Any, bucket: str) -> None:
    browser.open("buckets")
    browser.submit(f'a.settings[href$="/buckets/{bucket}/settings"]')
    browser.wait_for_text("Unversioned", ".versioning-status")
    browser.submit("button.enable-versioning")
    browser.wait_for_text("Enabled", ".versioning-status")
    browser.find(".lifecycle-form input[name=rule_id]").send_keys("expire-logs")
    browser.find(".lifecycle-form input[name=prefix]").send_keys("logs/")
    browser.find(".lifecycle-form input[name=expiration_days]").send_keys("30")
    browser.find(".lifecycle-form input[name=noncurrent_days]").send_keys("90")
    browser.find(".lifecycle-form input[name=abort_days]").send_keys("7")
    browser.submit(".lifecycle-form button[type=submit]")
    browser.wait_for_text("expire-logs", "table.lifecycle-rules")
    row = browser.text("table.lifecycle-rules tbody tr")
    assert "prefix logs/" in row and "30 days" in row and "90 days" in row and "7 days" in row
    assert "Enabled" in browser.text(".versioning-status")
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.screenshot("settings")
    _versions_are_listed(browser, s3, bucket)


def _versions_are_listed(browser: Browser, s3: Any, bucket: str) -> None:
    """With versioning on, two writes and a delete of one key show as three rows."""
    first = s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"two")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="notes.txt")
    browser.open(f"browse/{bucket}")
    browser.submit("p.view-toggle a")
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
