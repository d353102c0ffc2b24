"""Listing and bucket-level reads: ListObjects V1/V2, ListBuckets, HeadBucket, location,
DeleteObjects, and virtual-hosted-style addressing."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote_plus

import httpx
import pytest

from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import expected_listing

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

KEYS = sorted(
    [
        *(f"file{i:02d}" for i in range(5)),
        "photos/2023/jan/1.jpg",
        "photos/2023/jan/2.jpg",
        "photos/2023/feb/1.jpg",
        "photos/2024/mar/1.jpg",
        "photos/2024/mar/2.jpg",
        "photos/2024/readme",
        "docs/a",
        "docs/b",
        "docs/c/d",
        "docs/c/e",
        *(f"logs/2024-01-{d:02d}.log" for d in range(1, 11)),
        "z/1",
        "z/2",
        "z/3",
        "a b",
        "a+b",
    ],
    key=lambda k: k.encode(),
)


@pytest.fixture(scope="module")
def tree(node: NodeProcess) -> str:
    client = make_client(node.url)
    name = "listing-tree"
    client.create_bucket(Bucket=name)
    for key in KEYS:
        client.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def keys_of(page: dict[str, Any]) -> list[str]:
    return [item["Key"] for item in page.get("Contents", [])]


def prefixes_of(page: dict[str, Any]) -> list[str]:
    return [item["Prefix"] for item in page.get("CommonPrefixes", [])]


# --------------------------------------------------------------------------------------
# full listings, prefix, delimiter
# --------------------------------------------------------------------------------------


def test_list_everything_v2(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree)
    assert keys_of(page) == KEYS
    assert page["KeyCount"] == 30
    assert page["IsTruncated"] is False
    assert page["MaxKeys"] == 1000
    assert "NextContinuationToken" not in page
    first = page["Contents"][0]
    assert first["Size"] == len(first["Key"].encode())
    assert first["ETag"] == f'"{hashlib.md5(first["Key"].encode()).hexdigest()}"'
    assert first["StorageClass"] == "STANDARD"
    assert abs(first["LastModified"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert "Owner" not in first  # V2 shows owners only with FetchOwner
    owned = s3.list_objects_v2(Bucket=tree, FetchOwner=True, MaxKeys=1)["Contents"][0]
    assert owned["Owner"]["DisplayName"] == ACCESS_KEY


def test_list_everything_v1(s3: Any, tree: str) -> None:
    page = s3.list_objects(Bucket=tree)
    assert keys_of(page) == KEYS
    assert page["IsTruncated"] is False
    assert "NextMarker" not in page
    assert page["Contents"][0]["Owner"]["DisplayName"] == ACCESS_KEY


@pytest.mark.parametrize(
    ("prefix", "delimiter"),
    [
        ("photos/", ""),
        ("photos/2023/", ""),
        ("", "/"),
        ("photos/", "/"),
        ("photos/2024/", "/"),
        ("docs/", "/"),
        ("a", ""),
        ("nothing-here/", "/"),
        ("", "-"),
        ("logs/2024-01-0", "."),
    ],
)
def test_prefix_and_delimiter(s3: Any, tree: str, prefix: str, delimiter: str) -> None:
    want_keys, want_prefixes = expected_listing(KEYS, prefix, delimiter)
    for page in (
        s3.list_objects_v2(Bucket=tree, Prefix=prefix, Delimiter=delimiter),
        s3.list_objects(Bucket=tree, Prefix=prefix, Delimiter=delimiter),
    ):
        assert keys_of(page) == want_keys
        assert prefixes_of(page) == want_prefixes
        assert page.get("Prefix", "") == prefix
        assert page.get("Delimiter", "") == delimiter
        assert page["IsTruncated"] is False
    v2 = s3.list_objects_v2(Bucket=tree, Prefix=prefix, Delimiter=delimiter)
    assert v2["KeyCount"] == len(want_keys) + len(want_prefixes)


def test_delimiter_at_root(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, Delimiter="/")
    assert prefixes_of(page) == ["docs/", "logs/", "photos/", "z/"]
    assert keys_of(page) == ["a b", "a+b", *(f"file{i:02d}" for i in range(5))]
    assert page["KeyCount"] == 11


# --------------------------------------------------------------------------------------
# max-keys
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_keys", [1, 2])
def test_small_max_keys(s3: Any, tree: str, max_keys: int) -> None:
    v2 = s3.list_objects_v2(Bucket=tree, MaxKeys=max_keys)
    assert keys_of(v2) == KEYS[:max_keys]
    assert v2["KeyCount"] == max_keys
    assert v2["MaxKeys"] == max_keys
    assert v2["IsTruncated"] is True
    assert v2["NextContinuationToken"]
    v1 = s3.list_objects(Bucket=tree, MaxKeys=max_keys)
    assert keys_of(v1) == KEYS[:max_keys]
    assert v1["IsTruncated"] is True


@pytest.mark.parametrize(("asked", "shown"), [(1000, 1000), (5000, 1000), (30, 30)])
def test_large_max_keys(s3: Any, tree: str, asked: int, shown: int) -> None:
    v2 = s3.list_objects_v2(Bucket=tree, MaxKeys=asked)
    assert keys_of(v2) == KEYS
    assert v2["MaxKeys"] == shown
    assert v2["IsTruncated"] is False
    assert s3.list_objects(Bucket=tree, MaxKeys=asked)["MaxKeys"] == shown


def test_max_keys_zero(s3: Any, tree: str) -> None:
    v2 = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert "Contents" not in v2
    assert "CommonPrefixes" not in v2
    assert v2["KeyCount"] == 0
    assert v2["MaxKeys"] == 0
    v1 = s3.list_objects(Bucket=tree, MaxKeys=0)
    assert "Contents" not in v1
    assert v1["MaxKeys"] == 0


def test_more_than_1000_keys_are_paged_at_1000(s3: Any, bucket: str) -> None:
    keys = [f"k{i:04d}" for i in range(1001)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b""), keys))
    first = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert first["KeyCount"] == 1000
    assert first["IsTruncated"] is True
    second = s3.list_objects_v2(Bucket=bucket, ContinuationToken=first["NextContinuationToken"])
    assert keys_of(second) == ["k1000"]
    assert second["IsTruncated"] is False
    v1 = s3.list_objects(Bucket=bucket)
    assert len(v1["Contents"]) == 1000
    assert v1["IsTruncated"] is True


# --------------------------------------------------------------------------------------
# pagination
# --------------------------------------------------------------------------------------


def paginate_v2(s3: Any, bucket: str, page_size: int, **params: Any) -> list[str]:
    seen: list[str] = []
    token = None
    for _ in range(200):
        extra = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=page_size, **params, **extra)
        assert page["KeyCount"] <= page_size
        assert page["KeyCount"] == len(keys_of(page)) + len(prefixes_of(page))
        seen += keys_of(page) + prefixes_of(page)
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            return seen
        assert page["KeyCount"] == page_size
        token = page["NextContinuationToken"]
    raise AssertionError("pagination did not end")


def paginate_v1(s3: Any, bucket: str, page_size: int, **params: Any) -> list[str]:
    seen: list[str] = []
    marker = ""
    for _ in range(200):
        page = s3.list_objects(Bucket=bucket, MaxKeys=page_size, Marker=marker, **params)
        entries = keys_of(page) + prefixes_of(page)
        assert len(entries) <= page_size
        seen += entries
        if not page["IsTruncated"]:
            return seen
        if params.get("Delimiter"):
            marker = page["NextMarker"]  # with a delimiter AWS sends NextMarker
            assert marker == max(entries, key=lambda e: e.encode())
        else:
            assert "NextMarker" not in page  # ...without one, clients use the last Key
            marker = keys_of(page)[-1]
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("page_size", [1, 3, 7, 29, 30])
@pytest.mark.parametrize(
    "params",
    [{}, {"Delimiter": "/"}, {"Prefix": "photos/"}, {"Prefix": "photos/", "Delimiter": "/"}],
    ids=["all", "delimiter", "prefix", "prefix-delimiter"],
)
def test_pagination_collects_every_entry_once(
    s3: Any, tree: str, page_size: int, params: dict[str, str]
) -> None:
    want_keys, want_prefixes = expected_listing(
        KEYS, params.get("Prefix", ""), params.get("Delimiter", "")
    )
    want = sorted(want_keys + want_prefixes)
    for seen in (
        paginate_v2(s3, tree, page_size, **params),
        paginate_v1(s3, tree, page_size, **params),
    ):
        assert len(seen) == len(set(seen)), "an entry was listed twice"
        assert sorted(seen) == want


def test_pages_ending_on_a_common_prefix(s3: Any, tree: str) -> None:
    # Root with "/": a b, a+b, docs/, file00..04, logs/, photos/, z/. Page size 3 ends the
    # first page on the prefix docs/; the next page must not list docs/ (or its keys) again.
    v2 = s3.list_objects_v2(Bucket=tree, Delimiter="/", MaxKeys=3)
    assert keys_of(v2) == ["a b", "a+b"]
    assert prefixes_of(v2) == ["docs/"]
    after = s3.list_objects_v2(
        Bucket=tree, Delimiter="/", MaxKeys=3, ContinuationToken=v2["NextContinuationToken"]
    )
    assert keys_of(after) == ["file00", "file01", "file02"]
    assert prefixes_of(after) == []
    v1 = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=3)
    assert v1["NextMarker"] == "docs/"
    after = s3.list_objects(Bucket=tree, Delimiter="/", MaxKeys=3, Marker="docs/")
    assert keys_of(after) == ["file00", "file01", "file02"]
    # A page made of prefixes only.
    only = s3.list_objects_v2(Bucket=tree, Prefix="photos/", Delimiter="/", MaxKeys=1)
    assert prefixes_of(only) == ["photos/2023/"]
    rest = s3.list_objects_v2(
        Bucket=tree,
        Prefix="photos/",
        Delimiter="/",
        MaxKeys=1,
        ContinuationToken=only["NextContinuationToken"],
    )
    assert prefixes_of(rest) == ["photos/2024/"]
    assert rest["IsTruncated"] is False


def test_start_after(s3: Any, tree: str) -> None:
    page = s3.list_objects_v2(Bucket=tree, StartAfter="file02")
    assert keys_of(page) == [k for k in KEYS if k.encode() > b"file02"]
    assert page["StartAfter"] == "file02"
    between = s3.list_objects_v2(Bucket=tree, StartAfter="file025")  # not itself a key
    assert keys_of(between)[0] == "file03"
    nothing = s3.list_objects_v2(Bucket=tree, StartAfter="zzz")
    assert nothing["KeyCount"] == 0
    assert nothing["IsTruncated"] is False
    # The continuation token wins over start-after.
    first = s3.list_objects_v2(Bucket=tree, MaxKeys=2)
    second = s3.list_objects_v2(
        Bucket=tree, MaxKeys=2, StartAfter="z", ContinuationToken=first["NextContinuationToken"]
    )
    assert keys_of(second) == KEYS[2:4]


def test_boto3_paginators(s3: Any, tree: str) -> None:
    v2 = s3.get_paginator("list_objects_v2").paginate(Bucket=tree, PaginationConfig={"PageSize": 4})
    pages = list(v2)
    assert len(pages) == 8
    assert [k for page in pages for k in keys_of(page)] == KEYS
    v1 = s3.get_paginator("list_objects").paginate(Bucket=tree, PaginationConfig={"PageSize": 4})
    assert [k for page in v1 for k in keys_of(page)] == KEYS
    grouped = s3.get_paginator("list_objects_v2").paginate(
        Bucket=tree, Delimiter="/", PaginationConfig={"PageSize": 2}
    )
    found = [p for p in grouped.search("CommonPrefixes[].Prefix") if p is not None]
    assert found == ["docs/", "logs/", "photos/", "z/"]


# --------------------------------------------------------------------------------------
# encoding-type=url
# --------------------------------------------------------------------------------------

ODD_KEYS = sorted(
    [
        "with space/a b.txt",
        "plus+sign",
        "ünïcødé/ключ",
        "ctl\x01char",
        "tab\there",
        "amp&lt;<tag>",
        "percent%20literal",
        "emoji😀",
    ],
    key=lambda k: k.encode(),
)


@pytest.fixture(scope="module")
def odd_bucket(node: NodeProcess) -> str:
    client = make_client(node.url)
    client.create_bucket(Bucket="odd-keys")
    for key in ODD_KEYS:
        client.put_object(Bucket="odd-keys", Key=key, Body=b"x")
    return "odd-keys"


def raw_get(url: str, query: str = "") -> httpx.Response:
    full = f"{url}?{query}" if query else url
    headers = sign_headers("GET", full, {}, ACCESS_KEY, SECRET_KEY, REGION)
    return httpx.get(full, headers=headers)


@pytest.mark.parametrize("list_type", ["list-type=2&", ""])
def test_encoding_type_url_encodes_keys(node: NodeProcess, odd_bucket: str, list_type: str) -> None:
    response = raw_get(f"{node.url}/{odd_bucket}", f"{list_type}encoding-type=url")
    assert response.status_code == 200
    root = ET.fromstring(response.content)  # parseable although keys hold \x01
    assert root.findtext(f"{NS}EncodingType") == "url"
    encoded = [el.text or "" for el in root.iter(f"{NS}Key")]
    for text in encoded:
        assert text.isascii()
        assert not any(c in text for c in " \t\x01<>&")
    assert [unquote_plus(text) for text in encoded] == ODD_KEYS


def test_encoding_type_url_prefix_delimiter_start_after(node: NodeProcess, odd_bucket: str) -> None:
    query = (
        f"list-type=2&encoding-type=url&delimiter=%2F&prefix={quote('ünï', safe='')}"
        f"&start-after={quote('ü', safe='')}"
    )
    root = ET.fromstring(raw_get(f"{node.url}/{odd_bucket}", query).content)
    assert unquote_plus(root.findtext(f"{NS}Prefix") or "") == "ünï"
    assert (root.findtext(f"{NS}Prefix") or "").isascii()
    assert unquote_plus(root.findtext(f"{NS}StartAfter") or "") == "ü"
    prefixes = [el.text or "" for el in root.iter(f"{NS}Prefix")][1:]
    assert [unquote_plus(p) for p in prefixes] == ["ünïcødé/"]
    assert all(p.isascii() for p in prefixes)


def test_boto3_decodes_url_encoded_keys(s3: Any, odd_bucket: str) -> None:
    assert keys_of(s3.list_objects_v2(Bucket=odd_bucket)) == ODD_KEYS
    assert keys_of(s3.list_objects(Bucket=odd_bucket)) == ODD_KEYS
    grouped = s3.list_objects_v2(Bucket=odd_bucket, Delimiter="/")
    assert prefixes_of(grouped) == ["with space/", "ünïcødé/"]
    paged = s3.get_paginator("list_objects").paginate(
        Bucket=odd_bucket, PaginationConfig={"PageSize": 3}
    )
    assert [k for page in paged for k in keys_of(page)] == ODD_KEYS
    for key in ODD_KEYS:
        assert s3.get_object(Bucket=odd_bucket, Key=key)["Body"].read() == b"x"


def test_bad_encoding_type(node: NodeProcess, odd_bucket: str) -> None:
    response = raw_get(f"{node.url}/{odd_bucket}", "list-type=2&encoding-type=base64")
    assert response.status_code == 400
    assert ET.fromstring(response.content).findtext("Code") == "InvalidArgument"


# --------------------------------------------------------------------------------------
# buckets
# --------------------------------------------------------------------------------------


def test_list_buckets(s3: Any, tree: str) -> None:
    listed = s3.list_buckets()
    assert listed["Owner"]["DisplayName"] == ACCESS_KEY
    assert len(listed["Owner"]["ID"]) == 64
    names = [b["Name"] for b in listed["Buckets"]]
    assert tree in names
    assert names == sorted(names)
    created = next(b["CreationDate"] for b in listed["Buckets"] if b["Name"] == tree)
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=10)


def test_head_bucket(s3: Any, tree: str) -> None:
    head = s3.head_bucket(Bucket=tree)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION


def test_get_bucket_location_us_east_1_is_empty(node: NodeProcess, s3: Any, tree: str) -> None:
    assert s3.get_bucket_location(Bucket=tree)["LocationConstraint"] is None
    root = ET.fromstring(raw_get(f"{node.url}/{tree}", "location").content)
    assert root.tag == f"{NS}LocationConstraint"
    assert not root.text


# --------------------------------------------------------------------------------------
# DeleteObjects
# --------------------------------------------------------------------------------------


def test_delete_objects_verbose_with_missing_keys(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a"}, {"Key": "missing"}, {"Key": "c"}], "Quiet": False},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "c", "missing"]
    assert "Errors" not in result
    assert keys_of(s3.list_objects_v2(Bucket=bucket)) == ["b"]


def test_delete_objects_quiet_reports_only_errors(s3: Any, bucket: str) -> None:
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    long_key = "k" * 1025
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [{"Key": "a"}, {"Key": "missing"}, {"Key": long_key}, {"Key": "b"}],
            "Quiet": True,
        },
    )
    assert "Deleted" not in result
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [(long_key, "KeyTooLongError")]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_special_keys(s3: Any, bucket: str) -> None:
    keys = ["a b", "x&y<z>", "ünï", "tab\tkey", "a/../b"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# --------------------------------------------------------------------------------------
# virtual-hosted style
# --------------------------------------------------------------------------------------

DOMAIN = "lakenode.test"


@pytest.fixture(scope="module")
def vhost_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("vhost") / "data", extra_args=["--domain", DOMAIN]
    ).start()
    yield process
    process.stop()


def vhost(
    node: NodeProcess, method: str, bucket: str, target: str, body: bytes = b""
) -> httpx.Response:
    """A request to 127.0.0.1 whose Host names the bucket, signed over that Host."""
    host = f"{bucket}.{DOMAIN}:{node.port}"
    url = f"{node.url}{target}"
    headers = sign_headers(
        method,
        url,
        {"host": host},
        ACCESS_KEY,
        SECRET_KEY,
        REGION,
        hashlib.sha256(body).hexdigest(),
    )
    return httpx.request(method, url, headers=headers, content=body)


def test_virtual_hosted_style(vhost_node: NodeProcess) -> None:
    assert vhost(vhost_node, "PUT", "vbucket", "/").status_code == 200
    put = vhost(vhost_node, "PUT", "vbucket", "/dir/key%20one", b"virtual")
    assert put.status_code == 200, put.text
    got = vhost(vhost_node, "GET", "vbucket", "/dir/key%20one")
    assert got.status_code == 200
    assert got.content == b"virtual"
    listing = vhost(vhost_node, "GET", "vbucket", "/?list-type=2")
    assert listing.status_code == 200
    root = ET.fromstring(listing.content)
    assert root.findtext(f"{NS}Name") == "vbucket"
    assert [el.text for el in root.iter(f"{NS}Key")] == ["dir/key one"]
    v1 = vhost(vhost_node, "GET", "vbucket", "/?prefix=dir%2F")
    assert [el.text for el in ET.fromstring(v1.content).iter(f"{NS}Key")] == ["dir/key one"]
    missing = vhost(vhost_node, "GET", "vbucket", "/nope")
    assert missing.status_code == 404
    assert ET.fromstring(missing.content).findtext("Code") == "NoSuchKey"
    # The same objects are reachable path-style, and the bucket is listed by name.
    path_style = make_client(vhost_node.url)
    assert path_style.get_object(Bucket="vbucket", Key="dir/key one")["Body"].read() == (b"virtual")
    assert [b["Name"] for b in path_style.list_buckets()["Buckets"]] == ["vbucket"]
    assert vhost(vhost_node, "DELETE", "vbucket", "/dir/key%20one").status_code == 204
    assert vhost(vhost_node, "DELETE", "vbucket", "/").status_code == 204
    assert path_style.list_buckets()["Buckets"] == []


def test_virtual_hosted_bucket_name_is_validated(vhost_node: NodeProcess) -> None:
    response = vhost(vhost_node, "PUT", "bad_name", "/")
    assert response.status_code == 400
    assert ET.fromstring(response.content).findtext("Code") == "InvalidBucketName"


def test_virtual_hosted_signature_covers_host(vhost_node: NodeProcess) -> None:
    vhost(vhost_node, "PUT", "signed-host", "/")
    host = f"signed-host.{DOMAIN}:{vhost_node.port}"
    url = f"{vhost_node.url}/"
    headers = sign_headers("GET", url, {"host": host}, ACCESS_KEY, SECRET_KEY, REGION)
    headers["host"] = f"other.{DOMAIN}:{vhost_node.port}"
    response = httpx.get(url, headers=headers)
    assert response.status_code == 403
    assert ET.fromstring(response.content).findtext("Code") == "SignatureDoesNotMatch"
