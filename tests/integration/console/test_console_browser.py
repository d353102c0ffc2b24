"""The console in a real headless Chromium: the first steps of an operator (sign in, make a
bucket) and the screenshots of docs/console.md."""

from __future__ import annotations

from tests.integration.console.browser import Browser
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY


def test_sign_in_and_create_a_bucket(browser: Browser) -> None:
    browser.open()
    assert "/signin" in browser.driver.current_url  # no session: to sign-in
    browser.screenshot("signin")
    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    browser.open("buckets")
    browser.find("form.create input[name=name]").send_keys("browser-made")
    browser.find("form.create button[type=submit]").click()
    browser.wait_for_text("browser-made", "table.list")
    browser.screenshot("buckets")
