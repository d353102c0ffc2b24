"""A real headless Chromium for the console's browser tests (Debian's ``chromium`` and
``chromedriver``, driven by Selenium; .ci/run installs them).

``Browser`` wraps one WebDriver session with what the tests need: sign in, open a console
page, wait for an element or a condition, submit a form and wait for the next page, and take
a screenshot for docs/console.md. Screenshots are written only when ``LAKENODE_SCREENSHOTS``
names a folder (so a test run leaves the repository alone): ``make screenshots`` sets it to
docs/console/.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

from tests.integration.console.console_http import PREFIX
from tests.integration.programs import require_program

WAIT_S: Final = 30.0
# The flags the workplace's probe found needed: no sandbox as root, and no background
# connections (the machine's network is closed, and tests use loopback only).
CHROMIUM_FLAGS: Final = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1280,900",
)


def _selenium() -> Any:
    try:
        import selenium.webdriver
    except ImportError:
        message = "selenium is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return selenium.webdriver


class Browser:
    """One headless Chromium, pointed at one node's console."""

    def __init__(self, driver: Any, base_url: str, downloads: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.downloads = downloads

    def open(self, page: str = "") -> None:
        self.driver.get(self.base_url + PREFIX + page)

    def sign_in(self, access_key: str, secret_key: str) -> None:
        self.open("signin")
        self.find("input[name=access_key]").send_keys(access_key)
        self.find("input[name=secret_key]").send_keys(secret_key)
        self.find("form.signin button[type=submit]").click()
        self.wait_for(lambda: "/signin" not in self.driver.current_url, "the sign-in to finish")

    def find(self, css: str) -> Any:
        """The first element matching ``css``, waiting until it is there."""
        from selenium.webdriver.common.by import By

        self.wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, css), f"{css!r}")
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def submit(self, button_css: str) -> None:
        """Click a form's button and wait until the next page replaced this one (so waits
        that follow never read an element of the page being left)."""
        from selenium.common.exceptions import StaleElementReferenceException

        page = self.find("html")
        self.find(button_css).click()

        def left() -> bool:
            try:
                page.is_enabled()
            except StaleElementReferenceException:
                return True
            return False

        self.wait_for(left, f"the page after clicking {button_css!r}")

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str = "main") -> str:
        """The text of the first element matching ``css``, read again if the page was
        replaced between finding it and reading it."""
        from selenium.webdriver.common.by import By

        def read() -> tuple[str] | None:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return (str(found[0].text),) if found else None

        return str(self.wait_for(read, f"{css!r}")[0])

    def wait_for(self, condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
        """Poll ``condition`` until it is truthy; fail naming ``what`` and the page's text."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        # A page that reloads itself (after an upload, say) leaves elements found before it
        # stale: ask again rather than fail.
        waiting = WebDriverWait(self.driver, timeout_s, poll_frequency=0.1,
                                ignored_exceptions=[StaleElementReferenceException])  # fmt: skip
        try:
            return waiting.until(lambda _driver: _unless_node_gone(condition))
        except TimeoutException:
            body = self.driver.find_element("tag name", "body").text[:2000]
            pytest.fail(f"waited {timeout_s} s for {what}; the page shows:\n{body}")

    def wait_for_text(self, text: str, css: str = "main", timeout_s: float = WAIT_S) -> None:
        from selenium.webdriver.common.by import By

        def shown() -> bool:
            return any(text in element.text for element in
                       self.driver.find_elements(By.CSS_SELECTOR, css))  # fmt: skip

        self.wait_for(shown, f"{text!r} in {css!r}", timeout_s)

    def screenshot(self, name: str) -> None:
        """Save the whole page, not only the window, as LAKENODE_SCREENSHOTS/<name>.png (only
        when that is set). Headless Chromium caps a window's height, so the picture is taken
        through the DevTools protocol, beyond the viewport."""
        folder = os.environ.get("LAKENODE_SCREENSHOTS")
        if not folder:
            return
        Path(folder).mkdir(parents=True, exist_ok=True)
        width, height = self.driver.execute_script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight];"
        )
        clip = {"x": 0, "y": 0, "width": int(width), "height": min(int(height), 4000), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "fromSurface": True, "clip": clip},
        )
        (Path(folder) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))

    def console_errors(self) -> list[str]:
        """Severe messages of the page's JavaScript console (a script error fails a test)."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry.get("level") == "SEVERE" and "favicon" not in entry["message"]
        ]


def _unless_node_gone(condition: Callable[[], Any]) -> Any:
    """``condition()``, or None when it read an element of a document being replaced: then
    chromedriver answers a plain WebDriverException rather than a stale-element one."""
    from selenium.common.exceptions import WebDriverException

    try:
        return condition()
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc.msg):
            return None
        raise


@contextmanager
def chromium(base_url: str) -> Iterator[Browser]:
    """A fresh headless Chromium with its own empty profile and download folder."""
    webdriver = _selenium()
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = require_program("chromium"), require_program("chromedriver")
    profile = Path(tempfile.mkdtemp(prefix="lakenode-chromium-"))
    downloads = profile / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(WAIT_S)
        yield Browser(driver, base_url, downloads)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
