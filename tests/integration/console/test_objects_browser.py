"""The object browser in a real headless Chromium: a 30 MiB multipart upload straight to S3
with its progress bar, browsing prefixes by their links and breadcrumb, the download and
share links, a cancelled upload that leaves nothing behind, and a file dropped on the upload
zone. Screenshots: browse, object, upload."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.console.browser import Browser
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY

MIB = 1 << 20
# Chromium's network emulation slows the uploads (loopback is too fast to watch a bar move).
PROGRESS_JS = """
const bar = document.getElementById('upload-progress');
const status = document.getElementById('upload-status');
const percent = document.getElementById('upload-percent');
return bar && status && !status.hidden ? [bar.value, percent.textContent] : null;
"""


@pytest.fixture
def browser(browser: Browser) -> Browser:
    """Signed in with the root key."""
    browser.sign_in(ACCESS_KEY, SECRET_KEY)
    return browser


def slow_uploads(browser: Browser, bytes_per_s: int) -> None:
    browser.driver.set_network_conditions(
        offline=False, latency=1, download_throughput=1 << 30, upload_throughput=bytes_per_s
    )


def a_file(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = secrets.token_bytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def test_upload_browse_download_and_share(
    browser: Browser, s3: Any, new_bucket: Callable[..., str], tmp_path: Path
) -> None:
    bucket = new_bucket("browse")
    for key in ("docs/2024/report.txt", "docs/readme.txt", "<b>bold<b>.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    browser.open("buckets")
    browser.find(f'a.browse[href$="/browse/{bucket}"]').click()
    browser.wait_for_text("docs/", "table.list")
    assert "<b>bold<b>.txt" in browser.text("table.list")  # a key shows as text

    path, data = a_file(tmp_path, "big upload.bin", 30 * MIB)
    slow_uploads(browser, 12 * MIB)
    browser.find("#upload-file").send_keys(str(path))
    seen = _watch_progress(browser)
    assert any(0 < value < 100 for value in seen), seen  # the bar moved
    browser.wait_for_text("big upload.bin", "table.list")
    assert s3.get_object(Bucket=bucket, Key="big upload.bin")["Body"].read() == data
    browser.screenshot("browse")

    browser.find('table.list tr.folder a[href*="prefix=docs%2F"]').click()
    browser.wait_for_text("2024/", "table.list")
    browser.find('table.list tr.folder a[href*="prefix=docs%2F2024%2F"]').click()
    browser.wait_for_text("report.txt", "table.list")
    browser.find('nav.crumbs a[href$="prefix=docs%2F"]').click()  # the breadcrumb, back up
    browser.wait_for_text("readme.txt", "table.list")
    browser.find(f'nav.crumbs a[href$="/browse/{bucket}"]').click()
    browser.wait_for_text("big upload.bin", "table.list")

    browser.find('table.list tr.object a[href*="key=big%20upload.bin"]').click()
    browser.wait_for_text("31457280 bytes", "dl.facts")
    browser.find("#download").click()
    downloaded = browser.downloads / "big upload.bin"
    browser.wait_for(
        lambda: downloaded.exists() and downloaded.stat().st_size == len(data),
        "the download to land",
    )
    assert downloaded.read_bytes() == data

    browser.find("form.share-form select[name=expires] option[value='86400']").click()
    browser.find("form.share-form button[type=submit]").click()
    url = browser.find("#share-url").get_attribute("value")
    assert url.startswith(browser.base_url + f"/{bucket}/big%20upload.bin?")
    assert "X-Amz-Expires=86400" in url
    browser.screenshot("object")
    assert httpx.get(url, timeout=60).content == data


def test_a_cancelled_upload_leaves_no_object_and_no_upload(
    browser: Browser, s3: Any, new_bucket: Callable[..., str], tmp_path: Path
) -> None:
    bucket = new_bucket("cancel")
    browser.open(f"browse/{bucket}")
    path, _data = a_file(tmp_path, "cancelled.bin", 40 * MIB)
    slow_uploads(browser, 4 * MIB)
    browser.find("#upload-file").send_keys(str(path))
    browser.wait_for(
        lambda: (browser.driver.execute_script(PROGRESS_JS) or [0])[0] > 0, "the upload to start"
    )
    browser.screenshot("upload")
    browser.find("#upload-cancel").click()
    browser.wait_for_text("Upload cancelled", "#upload-message")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def _watch_progress(browser: Browser, timeout_s: float = 60) -> list[float]:
    """The bar's values while the upload runs (until the page reloads to list the file)."""
    seen: list[float] = []
    started = False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = browser.driver.execute_script(PROGRESS_JS)
        if shown is None:
            if started:
                return seen
        else:
            started = True
            seen.append(float(shown[0]))
            if 30 < seen[-1] < 90 and len(seen) < 1000:
                assert shown[1].endswith("%")
        time.sleep(0.05)
    pytest.fail(f"the upload did not finish in {timeout_s} s; progress seen: {seen[-5:]}")


# A drop as the browser delivers it: a DragEvent whose DataTransfer holds a File (Selenium
# cannot drag a file from the desktop, so the page gets the same event built in the page).
DROP_JS = """
const [name, text] = arguments;
const transfer = new DataTransfer();
transfer.items.add(new File([text], name, {type: 'text/plain'}));
const zone = document.getElementById('upload-drop');
const how = {dataTransfer: transfer, bubbles: true, cancelable: true};
zone.dispatchEvent(new DragEvent('dragover', how));
zone.dispatchEvent(new DragEvent('drop', how));
"""


def test_a_file_dropped_on_the_zone_is_uploaded(
    browser: Browser, s3: Any, new_bucket: Callable[..., str]
) -> None:
    bucket = new_bucket("drop")
    s3.put_object(Bucket=bucket, Key="inbox/keep.txt", Body=b"keep")
    browser.open(f"browse/{bucket}?prefix=inbox%2F")
    browser.wait_for_text("keep.txt", "table.list")
    browser.driver.execute_script(DROP_JS, "dropped <b>note<b>.txt", "dropped bytes")
    browser.wait_for_text("dropped <b>note<b>.txt", "table.list")  # under the prefix shown
    body = s3.get_object(Bucket=bucket, Key="inbox/dropped <b>note<b>.txt")["Body"].read()
    assert body == b"dropped bytes"
