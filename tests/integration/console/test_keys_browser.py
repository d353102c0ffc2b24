"""The Keys page in a real headless Chromium: the root key makes a read-only key, reads its
secret off the page, disables and enables it; the new key then signs in to a second browser
and sees no write controls. Screenshots: ``keys`` and ``key-created`` (docs/console.md)."""

from __future__ import annotations

from tests.integration.console.browser import Browser, chromium
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

NEW_KEY = "browser-reader"


def test_root_makes_a_read_only_key_that_signs_in_without_write_controls(
    browser: Browser, node: NodeProcess
) -> None:
    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    browser.find("nav a[href$='/keys']").click()
    browser.wait_for_text("New key", "main")
    browser.find("form.new-key input[name=access_key]").send_keys(NEW_KEY)
    browser.find("form.new-key input[name=read_only]").click()
    browser.find("form.new-key input[name=buckets]").send_keys("shared-data")
    browser.find("form.new-key button[type=submit]").click()
    browser.wait_for_text("will not be shown again")
    assert browser.text("#created-access-key") == NEW_KEY
    secret = browser.text("#created-secret")
    assert len(secret) >= 30
    browser.screenshot("key-created")

    browser.open("keys")
    row = f"tr.key[data-access-key='{NEW_KEY}']"
    assert browser.text(f"{row} td.read-only") == "yes"
    assert secret not in browser.text()
    browser.find(f"{row} button.disable").click()
    browser.wait_for_text("disabled", f"{row} td.status")
    browser.screenshot("keys")
    browser.find(f"{row} button.enable").click()
    browser.wait_for_text("active", f"{row} td.status")

    with chromium(node.url) as reader:
        reader.sign_in(NEW_KEY, secret)
        assert reader.find("header .who").text == NEW_KEY
        assert reader.find_all("nav a[href$='/keys']") == []
        reader.open("buckets")
        reader.wait_for_text("Buckets", "h1")
        assert reader.find_all("form.create") == []
        assert reader.find_all("main form") == []  # no delete buttons either
        assert reader.console_errors() == []
        reader.open("keys")
        reader.wait_for_text("Only the root key")
        # The browser reports the refusal itself (a 403 document), and nothing else.
        assert [error for error in reader.console_errors() if "403" not in error] == []
