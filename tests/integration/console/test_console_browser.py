"""The console in a real headless Chromium: the first steps of an operator (sign in, make a
bucket, delete one after saying yes to the question) and the screenshots of
docs/console.md (signin, buckets)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.console.browser import Browser
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY


def test_sign_in_create_and_delete_a_bucket(browser: Browser) -> None:
    browser.open()
    assert "/signin" in browser.driver.current_url  # no session: to sign-in
    browser.screenshot("signin")
    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    browser.open("buckets")
    for name in ("browser-made", "browser-doomed"):
        browser.find("form.create input[name=name]").send_keys(name)
        browser.submit("form.create button[type=submit]")
        browser.wait_for_text(name, "table.list")
    browser.screenshot("buckets")

    delete = 'form.inline:has(input[name=name][value="browser-doomed"]) button'
    browser.find(delete).click()
    question = browser.wait_for(_alert(browser), "the question before deleting")
    assert "browser-doomed" in question.text
    question.dismiss()  # no: nothing sent
    assert "browser-doomed" in browser.text("table.list")
    browser.find(delete).click()
    browser.wait_for(_alert(browser), "the question again").accept()
    browser.wait_for(lambda: "browser-doomed" not in browser.text("table.list"), "the deletion")
    assert "browser-made" in browser.text("table.list")


def _alert(browser: Browser) -> Callable[[], Any]:
    from selenium.common.exceptions import NoAlertPresentException

    def present() -> Any:
        try:
            return browser.driver.switch_to.alert
        except NoAlertPresentException:
            return None

    return present
