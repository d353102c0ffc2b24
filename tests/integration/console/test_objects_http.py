"""The console's object browser over plain HTTP (node/console/objects.py): prefixes and
pages, escaping of hostile keys, tags, retention and legal hold, versions, delete, share and
download links, and the upload script's presign API, all decided by S3 as the signed-in key."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from tests.integration.console.console_http import PREFIX, csrf_of, make_key, sign_in
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
OBJECT_ROW = re.compile(r'<tr class="object">')
NEXT_LINK = re.compile(r'<a rel="next" class="next" href="([^"]+)"')


def browse(bucket: str, **params: str) -> str:
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    return f"{PREFIX}browse/{quote(bucket, safe='')}" + (f"?{query}" if query else "")


def object_page(bucket: str, key: str, version: str | None = None) -> str:
    url = f"{PREFIX}object/{quote(bucket, safe='')}?key={quote(key, safe='')}"
    return url + (f"&version={quote(version, safe='')}" if version else "")


def post_form(client: httpx.Client, bucket: str, data: dict[str, str]) -> httpx.Response:
    return client.post(f"{PREFIX}object/{quote(bucket, safe='')}", data=data)


def presign(client: httpx.Client, headers: dict[str, str], **ask: Any) -> httpx.Response:
    """A call of the upload script's presign API."""
    return client.post(PREFIX + "api/presign", headers=headers, json=ask)


def attribute(page: str, css_class: str, name: str = "href") -> str:
    found = re.search(rf'class="[^"]*\b{css_class}\b[^"]*"[^>]*\b{name}="([^"]*)"', page)
    assert found is not None, f"no {css_class} in the page"
    return html.unescape(found.group(1))


def test_browse_lists_prefixes_in_pages_of_200(node: NodeProcess, s3: Any, bucket: str) -> None:
    for index in range(250):
        s3.put_object(Bucket=bucket, Key=f"many/k-{index:03d}", Body=b"x")
    for key in ("a/b/c.txt", "a/d.txt", "top.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"hello")
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        top = client.get(browse(bucket))
        assert top.status_code == 200
        assert f'href="{browse(bucket, prefix="a/")}"' in top.text
        assert f'href="{browse(bucket, prefix="many/")}"' in top.text
        assert f'href="{object_page(bucket, "top.txt")}"' in top.text
        assert '"5d41402abc4b2a76b9719d911017c592"' in html.unescape(top.text)  # the ETag
        first = client.get(browse(bucket, prefix="many/"))
        assert len(OBJECT_ROW.findall(first.text)) == 200
        assert "k-000" in first.text and "k-199" in first.text and "k-200" not in first.text
        next_link = NEXT_LINK.search(first.text)
        assert next_link is not None
        second = client.get(html.unescape(next_link.group(1)))
        assert second.status_code == 200
        assert len(OBJECT_ROW.findall(second.text)) == 50
        assert "k-249" in second.text and NEXT_LINK.search(second.text) is None
        nested = client.get(browse(bucket, prefix="a/b/"))
        # The breadcrumb leads back to each part of the prefix and to the bucket's top.
        assert f'href="{browse(bucket, prefix="a/")}"' in nested.text
        assert f'href="{browse(bucket)}"' in nested.text
        assert f'href="{object_page(bucket, "a/b/c.txt")}"' in nested.text
        missing = client.get(browse("no-such-bucket-here"))
        assert missing.status_code == 404
        assert "NoSuchBucket" in missing.text


def test_hostile_and_odd_keys_show_as_text_and_link_safely(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    hostile, odd = "<script>alert(1)</script>", "sp ace/ü?#%+&=.txt"
    for key in (hostile, odd, "sp ace/../x"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        top = client.get(browse(bucket))
        assert "<script>alert" not in top.text
        assert "&lt;script&gt;alert(1)&lt;/</a>" in top.text  # its '/' makes a folder
        folder = client.get(browse(bucket, prefix="sp ace/"))
        link = re.search(r'<td class="name"><a href="([^"]+)">ü\?#%\+&amp;=\.txt</a>', folder.text)
        assert link is not None
        page = client.get(html.unescape(link.group(1)))
        assert page.status_code == 200
        assert "ü?#%+&amp;=.txt" in page.text
        dots = client.get(object_page(bucket, "sp ace/../x"))  # not resolved to "x"
        assert dots.status_code == 200 and "(11 bytes)" in dots.text
        hostile_page = client.get(object_page(bucket, hostile))
        assert hostile_page.status_code == 200
        assert "<script>alert" not in hostile_page.text
        assert '<dd class="name">&lt;script&gt;alert(1)&lt;/script&gt;</dd>' in hostile_page.text
        download = httpx.get(attribute(hostile_page.text, "download"), timeout=30)
        assert download.content == hostile.encode()
        assert download.headers["content-disposition"].startswith("attachment;")


def test_tags_are_set_and_shown_and_delete_needs_the_csrf_token(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"text", Metadata={"owner": "ops"})
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        token = csrf_of(client, object_page(bucket, "doc.txt").removeprefix(PREFIX))
        tags = {
            "tag_key_0": "team",
            "tag_value_0": "<b>blue</b>",
            "tag_key_1": "tier",
            "tag_value_1": "gold",
        }
        form = {"csrf": token, "action": "tags", "key": "doc.txt"}
        saved = post_form(client, bucket, form | tags)
        assert saved.status_code == 303
        assert saved.headers["location"] == object_page(bucket, "doc.txt")
        page = client.get(object_page(bucket, "doc.txt")).text
        assert 'value="team"' in page and 'value="&lt;b&gt;blue&lt;/b&gt;"' in page
        assert "x-amz-meta-owner" in page and "ops" in page
        stored = s3.get_object_tagging(Bucket=bucket, Key="doc.txt")["TagSet"]
        assert {(t["Key"], t["Value"]) for t in stored} == {
            ("team", "<b>blue</b>"),
            ("tier", "gold"),
        }
        twice = tags | {"tag_key_1": "team"}
        refused = post_form(client, bucket, form | twice)
        assert refused.status_code == 400  # a bad form is shown, never a 500
        for forged in ({}, {"csrf": "0" * 64}):
            denied = post_form(client, bucket, {"action": "delete", "key": "doc.txt"} | forged)
            assert denied.status_code == 403
        assert s3.head_object(Bucket=bucket, Key="doc.txt")["ContentLength"] == 4
        gone = post_form(client, bucket, {"csrf": token, "action": "delete", "key": "doc.txt"})
        assert gone.status_code == 303
        assert gone.headers["location"] == browse(bucket)
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        after = client.get(object_page(bucket, "doc.txt"))
        assert after.status_code == 404 and "NoSuchKey" in after.text
        no_bucket = client.get(object_page("no-such-bucket-here", "doc.txt"))
        assert no_bucket.status_code == 404 and "NoSuchBucket" in no_bucket.text


def test_a_read_only_key_sees_no_write_controls_and_s3_refuses_it(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
    access, secret = make_key(node, "--read-only")
    with sign_in(node, access, secret) as client:
        listing = client.get(browse(bucket))
        assert listing.status_code == 200
        assert "kept.txt" in listing.text and 'id="upload"' not in listing.text
        page = client.get(object_page(bucket, "kept.txt"))
        assert page.status_code == 200
        for control in (
            'value="delete"',
            'value="tags"',
            'value="retention"',
            'value="legal_hold"',
        ):
            assert control not in page.text
        assert 'value="share"' in page.text  # reading is allowed: so is sharing what it reads
        token = csrf_of(client)
        forged = post_form(client, bucket, {"csrf": token, "action": "delete", "key": "kept.txt"})
        assert forged.status_code == 403
        assert "AccessDenied" in forged.text
        upload = presign(client, {"x-csrf-token": token}, op="multipart", bucket=bucket,
                         key="x", size=1)  # fmt: skip
        assert upload.status_code == 403
        assert upload.json()["code"] == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"kept"


def test_the_presign_api_checks_the_call_then_s3_takes_the_uploads(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        token = csrf_of(client)
        ask = {"op": "put", "bucket": bucket, "key": "small.bin"}
        assert presign(client, {}, **ask).status_code == 403
        foreign = presign(client, {"x-csrf-token": token, "origin": "https://evil.example"}, **ask)
        assert foreign.status_code == 403
        call = {"x-csrf-token": token, "origin": node.url}
        bad = presign(client, call, **(ask | {"op": "steal"}))
        assert bad.status_code == 400
        single = presign(client, call, **ask)
        assert single.status_code == 200
        url = single.json()["url"]
        assert url.startswith(node.url + f"/{bucket}/small.bin?") and SECRET_KEY not in url
        # As a browser sends it: a Content-Type (not signed) and its Origin.
        put = httpx.put(url, content=b"small", headers={"content-type": "text/plain", **call})
        assert put.status_code == 200, put.text
        size = 9 << 20  # two parts: 8 MiB and 1 MiB
        start = presign(client, call, op="multipart", bucket=bucket, key="big.bin", size=size,
                        content_type="application/x-test")  # fmt: skip
        assert start.status_code == 200, start.text
        plan = start.json()
        assert (plan["parts"], plan["part_size"]) == (2, 8 << 20)
        urls = presign(client, call, op="parts", bucket=bucket, key="big.bin",
                       upload_id=plan["upload_id"], numbers=[1, 2]).json()["urls"]  # fmt: skip
        data = secrets.token_bytes(size)
        etags = [
            httpx.put(
                urls[str(n)], content=data[(n - 1) * (8 << 20) : n * (8 << 20)], timeout=60
            ).headers["etag"]
            for n in (1, 2)
        ]
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, etag in enumerate(etags, 1)
        )
        document = f'<CompleteMultipartUpload xmlns="{NS}">{parts}</CompleteMultipartUpload>'
        headers = {"content-type": "text/xml", **call}
        done = httpx.post(plan["complete_url"], headers=headers, content=document)
        assert done.status_code == 200 and b"<Error>" not in done.content, done.text
    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["Body"].read() == data and got["ContentType"] == "application/x-test"
    assert s3.get_object(Bucket=bucket, Key="small.bin")["Body"].read() == b"small"


def test_an_aborted_multipart_upload_leaves_nothing(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        call = {"x-csrf-token": csrf_of(client)}
        plan = presign(
            client, call, op="multipart", bucket=bucket, key="gone.bin", size=20 << 20
        ).json()
        assert plan["parts"] == 3
        assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
        assert httpx.delete(plan["abort_url"], timeout=30).status_code == 204
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_share_link_serves_the_bytes_to_anyone(node: NodeProcess, s3: Any, bucket: str) -> None:
    body = secrets.token_bytes(1000)
    s3.put_object(Bucket=bucket, Key="shared/file name.bin", Body=body)
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        token = csrf_of(client)
        form = {"csrf": token, "action": "share", "key": "shared/file name.bin"}
        shown = post_form(client, bucket, form | {"expires": str(7 * 24 * 3600)})
        assert shown.status_code == 200
        url = attribute(shown.text, "share-url", "value")
        assert url.startswith(f"{node.url}/{bucket}/shared/file%20name.bin?")
        assert "X-Amz-Expires=604800" in url and "7 days" in shown.text
        assert post_form(client, bucket, form | {"expires": "999999"}).status_code == 400
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200 and fetched.content == body


def test_versions_are_listed_with_delete_markers(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="v/doc", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="v/doc", Body=b"two!")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="v/doc")["VersionId"]
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        plain = client.get(browse(bucket, prefix="v/")).text
        assert "v/doc" not in plain.replace(f"key={quote('v/doc', safe='')}", "")  # deleted
        history = client.get(browse(bucket, prefix="v/", versions="1"))
        assert history.status_code == 200
        for version in (first, second, marker):
            assert f'href="{html.escape(object_page(bucket, "v/doc", version))}"' in history.text
        assert "delete marker" in history.text and "latest" in history.text
        old = client.get(object_page(bucket, "v/doc", first))
        assert old.status_code == 200 and "3 bytes" in old.text
        assert httpx.get(attribute(old.text, "download"), timeout=30).content == b"one"
        marker_page = client.get(object_page(bucket, "v/doc", marker))
        assert marker_page.status_code == 200 and "delete marker" in marker_page.text
        token = csrf_of(client)
        form = {"csrf": token, "action": "delete", "key": "v/doc", "version": marker}
        restored = post_form(client, bucket, form)
        assert restored.status_code == 303
        assert restored.headers["location"] == browse(bucket, prefix="v/", versions="1")
    assert s3.get_object(Bucket=bucket, Key="v/doc")["Body"].read() == b"two!"


def test_retention_and_legal_hold(
    node: NodeProcess, s3: Any, new_bucket: Callable[..., str]
) -> None:
    locked = new_bucket("locked", ObjectLockEnabledForBucket=True)
    version = s3.put_object(Bucket=locked, Key="record", Body=b"r")["VersionId"]
    plain = new_bucket("plain")
    s3.put_object(Bucket=plain, Key="record", Body=b"r")
    with sign_in(node, ACCESS_KEY, SECRET_KEY) as client:
        unlocked = client.get(object_page(plain, "record"))
        assert unlocked.status_code == 200
        assert "Object lock is not available here" in unlocked.text
        assert 'value="retention"' not in unlocked.text
        token = csrf_of(client)
        base = {"csrf": token, "key": "record", "version": version}
        governance = base | {"action": "retention", "mode": "GOVERNANCE"}
        bad_date = post_form(client, locked, governance | {"retain_until": "someday"})
        assert bad_date.status_code == 400
        past = post_form(client, locked, governance | {"retain_until": "2001-01-01"})
        assert past.status_code == 400 and "InvalidArgument" in past.text  # S3's own word
        kept = post_form(client, locked, governance | {"retain_until": "2099-12-31"})
        assert kept.status_code == 303
        held = post_form(client, locked, base | {"action": "legal_hold", "status": "ON"})
        assert held.status_code == 303
        page = client.get(object_page(locked, "record", version)).text
        assert "GOVERNANCE until 2099-12-31 23:59:59 UTC" in page
        assert '<dd class="legal-hold">ON</dd>' in page
        refused = post_form(client, locked, base | {"action": "delete"})
        assert refused.status_code == 403 and "AccessDenied" in refused.text
        post_form(client, locked, base | {"action": "legal_hold", "status": "OFF"})
    retention = s3.get_object_retention(Bucket=locked, Key="record", VersionId=version)
    assert retention["Retention"]["Mode"] == "GOVERNANCE"
    hold = s3.get_object_legal_hold(Bucket=locked, Key="record", VersionId=version)
    assert hold["LegalHold"]["Status"] == "OFF"
    s3.delete_object(Bucket=locked, Key="record", VersionId=version, BypassGovernanceRetention=True)
