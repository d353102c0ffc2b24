"""What the object browser's pages show besides S3's answers: the links between them (every
untrusted key and bucket name encoded), the breadcrumb, sizes, the share-link expiries, the
base URL of presigned links, and the reading of the pages' forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote, urlencode

from fastapi import Request

from node.console.web import PREFIX, ConsoleContext

DOWNLOAD_EXPIRES_S: Final = 900  # the page's download link: long enough to click it
# Share links: from an hour to the 7 days SigV4 allows a presigned URL to live.
SHARE_EXPIRIES: Final = (
    (3600, "1 hour"),
    (6 * 3600, "6 hours"),
    (24 * 3600, "1 day"),
    (3 * 24 * 3600, "3 days"),
    (7 * 24 * 3600, "7 days"),
)
TAGS_MAX: Final = 10  # AWS's limit of tags on an object: the form has this many rows
LOCK_MODES: Final = ("GOVERNANCE", "COMPLIANCE")
SIZE_UNITS: Final = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


class FormError(ValueError):
    """A form field the page cannot send to S3 as given (shown, with status 400)."""


@dataclass(frozen=True)
class Links:
    """The console's URLs for one bucket's pages."""

    bucket: str

    def browse(
        self, prefix: str = "", token: str | None = None, versions: bool = False,
        key_marker: str | None = None, version_marker: str | None = None,
    ) -> str:  # fmt: skip
        params = {"prefix": prefix} if prefix else {}
        if versions:
            params["versions"] = "1"
        for name, value in (("token", token), ("key_marker", key_marker),
                            ("version_marker", version_marker)):  # fmt: skip
            if value:
                params[name] = value
        return self._url("browse", params)

    def object(self, key: str, version: str | None = None) -> str:
        return self._url("object", {"key": key} | ({"version": version} if version else {}))

    def action(self) -> str:
        """Where the object page's forms POST."""
        return self._url("object", {})

    def _url(self, page: str, params: dict[str, str]) -> str:
        url = f"{PREFIX}{page}/{quote(self.bucket, safe='')}"
        return f"{url}?{urlencode(params, quote_via=quote)}" if params else url


def breadcrumb(prefix: str) -> list[tuple[str, str]]:
    """(part, prefix up to and with it) for each '/'-ended part of ``prefix``."""
    crumbs: list[tuple[str, str]] = []
    start = 0
    while (end := prefix.find("/", start)) != -1:
        crumbs.append((prefix[start : end + 1], prefix[: end + 1]))
        start = end + 1
    if start < len(prefix):  # a prefix typed without its last '/'
        crumbs.append((prefix[start:], prefix))
    return crumbs


def parent_prefix(key: str) -> str:
    """The folder a key is listed in ('' for the bucket's top)."""
    return key[: key.rfind("/") + 1]


def human_size(size: int) -> str:
    value, unit = float(size), 0
    while value >= 1024 and unit < len(SIZE_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {SIZE_UNITS[unit]}"


def base_url(request: Request, ctx: ConsoleContext) -> str:
    """The address the browser used (its Host, the node's scheme): a presigned URL's
    signature covers the Host, so it must be the one the browser will send. The scheme
    comes from the node's own TLS setting, since the request may have been forwarded to
    this worker over its internal socket."""
    scheme = "https" if ctx.secure_cookies else request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}"


def download_disposition(key: str) -> str:
    """Content-Disposition for the download link: the key's last part as the file name
    (RFC 6266: an ASCII fallback and the UTF-8 name)."""
    name = key[key.rfind("/") + 1 :] or "download"
    fallback = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name if c.isascii())
    encoded = quote(name, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


def share_expiry(value: str) -> int:
    seconds = {str(seconds): seconds for seconds, _label in SHARE_EXPIRIES}.get(value)
    if seconds is None:
        raise FormError("Choose one of the offered expiries.")
    return seconds


def expiry_label(seconds: int) -> str:
    return dict(SHARE_EXPIRIES)[seconds]


def tags_of(form: dict[str, str]) -> list[tuple[str, str]]:
    """The tag rows of the tags form (``tag_key_N``/``tag_value_N``); empty names are
    unused rows. S3 decides whether the names and values are valid."""
    tags = []
    for row in range(TAGS_MAX):
        name = form.get(f"tag_key_{row}", "").strip()
        if name:
            tags.append((name, form.get(f"tag_value_{row}", "")))
    if len({name for name, _value in tags}) != len(tags):
        raise FormError("Each tag name may appear once.")
    return tags


def retention_of(form: dict[str, str]) -> tuple[str, datetime]:
    """The retention form: a mode and a retain-until day (the end of which, in UTC)."""
    mode = form.get("mode", "")
    if mode not in LOCK_MODES:
        raise FormError("Choose GOVERNANCE or COMPLIANCE.")
    try:
        day = datetime.strptime(form.get("retain_until", ""), "%Y-%m-%d")
    except ValueError:
        raise FormError("The retain-until date must be a date (YYYY-MM-DD).") from None
    return mode, day.replace(hour=23, minute=59, second=59, tzinfo=UTC)


def legal_hold_of(form: dict[str, str]) -> str:
    status = form.get("status", "")
    if status not in ("ON", "OFF"):
        raise FormError("The legal hold is ON or OFF.")
    return status
