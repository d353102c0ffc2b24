"""Bucket versioning through boto3 against a real node: statuses, version ids, delete
markers, permanent version deletes, the null version, ListObjectVersions paging and
DeleteObjects with version ids."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import error_headers, error_of, headers_of, md5_etag, send

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def enable(s3: Any, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def put(s3: Any, bucket: str, key: str, body: bytes) -> Any:
    """PUT and return the version id the node answered (None when it sent none)."""
    return s3.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")


def read(s3: Any, bucket: str, key: str, **extra: Any) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


@dataclass(frozen=True)
class Entry:
    """One <Version> or <DeleteMarker> of a ListObjectVersions page, in document order."""

    key: str
    version_id: str
    is_latest: bool
    is_marker: bool
    etag: str | None


def versions_page(
    node: NodeProcess, bucket: str, **params: str
) -> tuple[list[Entry], list[str], ET.Element]:
    query = "&".join(["versions", *(f"{k}={quote(v, safe='')}" for k, v in sorted(params.items()))])
    response = send(node.url, "GET", f"/{bucket}", query)
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    entries = []
    for element in root:
        tag = element.tag.removeprefix(NS)
        if tag not in ("Version", "DeleteMarker"):
            continue
        entries.append(
            Entry(
                key=element.findtext(f"{NS}Key", ""),
                version_id=element.findtext(f"{NS}VersionId", ""),
                is_latest=element.findtext(f"{NS}IsLatest") == "true",
                is_marker=tag == "DeleteMarker",
                etag=element.findtext(f"{NS}ETag"),
            )
        )
    prefixes = [p.findtext(f"{NS}Prefix", "") for p in root.findall(f"{NS}CommonPrefixes")]
    return entries, prefixes, root


def all_versions(node: NodeProcess, bucket: str) -> list[Entry]:
    entries, _prefixes, root = versions_page(node, bucket)
    assert root.findtext(f"{NS}IsTruncated") == "false"
    return entries


# ---- status ---------------------------------------------------------------------------------


def test_versioning_status_lifecycle(s3: Any, bucket: str) -> None:
    never = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in never
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_put_bucket_versioning_errors(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        enable(s3, bucket, "Sometimes")
    assert error_of(excinfo) == (400, "MalformedXML")
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        enable(s3, "no-such-bucket-versioning")
    assert error_of(excinfo) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_versioning(Bucket="no-such-bucket-versioning")
    assert error_of(excinfo) == (404, "NoSuchBucket")


def test_unversioned_bucket_sends_no_version_ids(s3: Any, bucket: str) -> None:
    put_response = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "x-amz-version-id" not in headers_of(put_response)
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="k")
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert "VersionId" not in deleted and "DeleteMarker" not in deleted
    assert all_versions_via_boto(s3, bucket) == ([], [])


def all_versions_via_boto(s3: Any, bucket: str) -> tuple[list[Any], list[Any]]:
    response = s3.list_object_versions(Bucket=bucket)
    return response.get("Versions", []), response.get("DeleteMarkers", [])


# ---- version ids and old versions -----------------------------------------------------------


def test_version_ids_on_every_response(node: NodeProcess, s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"one")
    v2 = put(s3, bucket, "k", b"two!")
    assert v1 and v2 and v1 != v2 and "null" not in (v1, v2)

    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == v2 and got["Body"].read() == b"two!"
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == v2

    old = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert old["Body"].read() == b"one"
    assert old["VersionId"] == v1 and old["ETag"] == md5_etag(b"one")
    head_old = s3.head_object(Bucket=bucket, Key="k", VersionId=v1)
    assert head_old["VersionId"] == v1 and head_old["ContentLength"] == 3
    ranged = s3.get_object(Bucket=bucket, Key="k", VersionId=v1, Range="bytes=1-")
    assert ranged["Body"].read() == b"ne" and ranged["VersionId"] == v1

    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert copied["CopySourceVersionId"] == v2
    assert copied["VersionId"] not in (None, "null", v1, v2)
    assert s3.head_object(Bucket=bucket, Key="copy")["VersionId"] == copied["VersionId"]

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    assert marker not in (None, "null", v1, v2)

    versions = all_versions(node, bucket)
    assert [(e.key, e.version_id, e.is_latest, e.is_marker) for e in versions] == [
        ("copy", copied["VersionId"], True, False),
        ("k", marker, True, True),
        ("k", v2, False, False),
        ("k", v1, False, False),
    ]


def test_get_of_a_missing_version(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"one")
    missing = v1[:-1] + ("0" if v1[-1] != "0" else "1")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=missing)
    assert error_of(excinfo) == (404, "NoSuchVersion")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k", VersionId=missing)
    assert error_of(excinfo)[0] == 404
    # A version id of another key is not this key's version.
    put(s3, bucket, "other", b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="other", VersionId=v1)
    assert error_of(excinfo) == (404, "NoSuchVersion")


# ---- delete markers -------------------------------------------------------------------------


def test_delete_marker_hides_the_key(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"one")
    put(s3, bucket, "visible", b"v")
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    marker = deleted["VersionId"]
    assert headers_of(deleted)["x-amz-delete-marker"] == "true"

    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_of(excinfo) == (404, "NoSuchKey")
    assert error_headers(excinfo)["x-amz-delete-marker"] == "true"
    assert error_headers(excinfo)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(excinfo)[0] == 404
    assert error_headers(excinfo)["x-amz-delete-marker"] == "true"

    # The marker itself, by id: 405 Method Not Allowed.
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert error_of(excinfo) == (405, "MethodNotAllowed")
    assert error_headers(excinfo)["x-amz-delete-marker"] == "true"
    assert error_headers(excinfo)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert error_of(excinfo)[0] == 405

    # Listings of current objects skip the key; the old version is still readable.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["visible"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["visible"]
    assert read(s3, bucket, "k", VersionId=v1) == b"one"

    # A second DELETE stacks another marker.
    again = s3.delete_object(Bucket=bucket, Key="k")
    assert again["DeleteMarker"] is True and again["VersionId"] != marker
    _versions, markers = all_versions_via_boto(s3, bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [
        (again["VersionId"], True),
        (marker, False),
    ]


def test_list_objects_hides_prefixes_of_deleted_keys(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    for key in ("dir/a", "dir/b", "gone/x", "keep/y"):
        put(s3, bucket, key, b"x")
    s3.delete_object(Bucket=bucket, Key="gone/x")
    s3.delete_object(Bucket=bucket, Key="dir/a")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "keep/"]
    assert top["KeyCount"] == 2
    flat = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in flat["Contents"]] == ["dir/b", "keep/y"]
    paged = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 1}
        )
        for o in page.get("Contents", [])
    ]
    assert paged == ["dir/b", "keep/y"]


def test_delete_version_removes_it_for_good(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"one")
    v2 = put(s3, bucket, "k", b"two")
    gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert gone["VersionId"] == v2 and "DeleteMarker" not in gone
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == v1 and got["Body"].read() == b"one"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2)
    assert error_of(excinfo) == (404, "NoSuchVersion")
    versions, markers = all_versions_via_boto(s3, bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v1, True)]
    assert markers == []
    # Deleting it again (or any unknown version) is still a 204.
    again = s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204

    # Removing a non-latest version leaves the latest alone.
    v3 = put(s3, bucket, "k", b"three")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == v3
    # The last version removed: the key is gone, with no marker left behind.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v3)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert error_of(excinfo)[0] == 404
    assert "x-amz-delete-marker" not in error_headers(excinfo)
    assert all_versions_via_boto(s3, bucket) == ([], [])


def test_removing_the_delete_marker_restores_the_object(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"restored")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert removed["DeleteMarker"] is True
    assert removed["VersionId"] == marker
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == v1 and got["Body"].read() == b"restored"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    versions, markers = all_versions_via_boto(s3, bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v1, True)]
    assert markers == []


def test_delete_bucket_refuses_delete_markers_only(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"x")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    # Only the marker is left, and nothing is listed as an object.
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert error_of(excinfo) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as excinfo:
        s3.head_bucket(Bucket=bucket)
    assert error_of(excinfo)[0] == 404


def test_delete_bucket_refuses_old_versions_only(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    v1 = put(s3, bucket, "k", b"x")
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    s3.delete_object(Bucket=bucket, Key="k")  # a new marker over v1
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert error_of(excinfo) == (409, "BucketNotEmpty")
    assert read(s3, bucket, "k", VersionId=v1) == b"x"


# ---- the null version -----------------------------------------------------------------------


def test_suspended_writes_replace_only_the_null_version(s3: Any, bucket: str) -> None:
    pre = put(s3, bucket, "k", b"pre-versioning")
    assert pre is None
    enable(s3, bucket)
    e1 = put(s3, bucket, "k", b"enabled one")
    assert read(s3, bucket, "k", VersionId="null") == b"pre-versioning"
    enable(s3, bucket, "Suspended")

    put(s3, bucket, "k", b"suspended one")
    assert read(s3, bucket, "k") == b"suspended one"
    # The pre-versioning null version was replaced; the enabled-era version stays.
    assert read(s3, bucket, "k", VersionId="null") == b"suspended one"
    put(s3, bucket, "k", b"suspended two")
    versions, markers = all_versions_via_boto(s3, bucket)
    assert [(v["VersionId"], v["IsLatest"], v["ETag"]) for v in versions] == [
        ("null", True, md5_etag(b"suspended two")),
        (e1, False, md5_etag(b"enabled one")),
    ]
    assert markers == []
    assert read(s3, bucket, "k", VersionId=e1) == b"enabled one"

    # DELETE while suspended: a null delete marker takes the null version's place.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    versions, markers = all_versions_via_boto(s3, bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(e1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [("null", True)]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_of(excinfo) == (404, "NoSuchKey")

    # Re-enabled: new versions get ids again; removing the null marker uncovers e1.
    enable(s3, bucket)
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["VersionId"] == e1 and got["Body"].read() == b"enabled one"
    e2 = put(s3, bucket, "k", b"enabled two")
    assert e2 not in (None, "null", e1)


def test_delete_of_null_version_by_id(s3: Any, bucket: str) -> None:
    put(s3, bucket, "k", b"null one")
    enable(s3, bucket)
    e1 = put(s3, bucket, "k", b"versioned")
    removed = s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert removed["VersionId"] == "null"
    versions, _ = all_versions_via_boto(s3, bucket)
    assert [v["VersionId"] for v in versions] == [e1]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert error_of(excinfo) == (404, "NoSuchVersion")


# ---- ListObjectVersions paging --------------------------------------------------------------


@pytest.fixture
def history(s3: Any, bucket: str) -> list[Entry]:
    """Keys with several versions and delete markers; the full listing S3 must return."""
    enable(s3, bucket)
    made: dict[str, list[tuple[str, bool, bytes]]] = {}

    def write(key: str, body: bytes | None) -> None:
        if body is None:
            version = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
        else:
            version = put(s3, bucket, key, body)
        made.setdefault(key, []).append((version, body is None, body or b""))

    plan: list[tuple[str, bytes | None]] = [
        ("a", b"a1"),
        ("a/b/1", b"ab1"),
        ("a", b"a2"),
        ("a/b/1", None),
        ("a/c", b"ac1"),
        ("b", None),  # a marker with no version under it
        ("a", b"a3"),
        ("b", b"b1"),
        ("c/ü", b"cu1"),
        ("c/ü", b"cu2"),
        ("c/ü", None),
        ("c/ü", None),
        ("d", b"d1"),
    ]
    for key, body in plan:
        write(key, body)
    expected = []
    for key in sorted(made, key=lambda k: k.encode()):
        for index, (version, is_marker, body) in enumerate(reversed(made[key])):
            expected.append(
                Entry(key, version, index == 0, is_marker, None if is_marker else md5_etag(body))
            )
    return expected


def test_list_object_versions_full_listing(
    node: NodeProcess, bucket: str, history: list[Entry]
) -> None:
    assert all_versions(node, bucket) == history


def page_versions(
    node: NodeProcess, bucket: str, max_keys: int, **params: str
) -> tuple[list[Entry], list[str]]:
    """Follow NextKeyMarker/NextVersionIdMarker by hand; check every page's bookkeeping."""
    entries: list[Entry] = []
    prefixes: list[str] = []
    markers: dict[str, str] = {}
    for _ in range(100):
        page, common, root = versions_page(
            node, bucket, **{"max-keys": str(max_keys)}, **markers, **params
        )
        assert len(page) + len(common) <= max_keys
        assert root.findtext(f"{NS}MaxKeys") == str(max_keys)
        assert root.findtext(f"{NS}KeyMarker", "") == markers.get("key-marker", "")
        entries += page
        prefixes += common
        if root.findtext(f"{NS}IsTruncated") == "false":
            assert root.find(f"{NS}NextKeyMarker") is None
            return entries, prefixes
        assert len(page) + len(common) == max_keys
        markers = {"key-marker": root.findtext(f"{NS}NextKeyMarker", "")}
        version_marker = root.findtext(f"{NS}NextVersionIdMarker")
        if version_marker:
            markers["version-id-marker"] = version_marker
    raise AssertionError("listing does not end")


@pytest.mark.parametrize("max_keys", [1, 2, 3, 5])
def test_list_object_versions_paging(
    node: NodeProcess, bucket: str, history: list[Entry], max_keys: int
) -> None:
    entries, prefixes = page_versions(node, bucket, max_keys)
    assert entries == history
    assert prefixes == []


@pytest.mark.parametrize("max_keys", [1, 2, 1000])
def test_list_object_versions_prefix_and_delimiter(
    node: NodeProcess, bucket: str, history: list[Entry], max_keys: int
) -> None:
    entries, prefixes = page_versions(node, bucket, max_keys, delimiter="/")
    assert entries == [e for e in history if "/" not in e.key]
    assert prefixes == ["a/", "c/"]

    entries, prefixes = page_versions(node, bucket, max_keys, prefix="a/", delimiter="/")
    assert entries == [e for e in history if e.key == "a/c"]
    assert prefixes == ["a/b/"]

    entries, prefixes = page_versions(node, bucket, max_keys, prefix="c/")
    assert entries == [e for e in history if e.key.startswith("c/")]
    assert [e.is_marker for e in entries] == [True, True, False, False]
    assert prefixes == []


def test_list_object_versions_markers(node: NodeProcess, bucket: str, history: list[Entry]) -> None:
    # key-marker alone: every version of later keys.
    after_a, _, _ = versions_page(node, bucket, **{"key-marker": "a"})
    assert after_a == [e for e in history if e.key.encode() > b"a"]
    # key-marker + version-id-marker: the older versions of that key, then later keys.
    a_versions = [e for e in history if e.key == "a"]
    after_a2, _, root = versions_page(
        node, bucket, **{"key-marker": "a", "version-id-marker": a_versions[1].version_id}
    )
    assert after_a2 == [a_versions[2], *after_a]
    assert root.findtext(f"{NS}VersionIdMarker") == a_versions[1].version_id
    # A version-id-marker without a key-marker is refused, as AWS does.
    response = send(
        node.url, "GET", f"/{bucket}", f"versions&version-id-marker={a_versions[0].version_id}"
    )
    assert response.status_code == 400 and "InvalidArgument" in response.text


def test_list_object_versions_through_boto3_paginator(
    s3: Any, bucket: str, history: list[Entry]
) -> None:
    seen: list[tuple[str, str, bool, bool]] = []
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}
    ):
        # boto3 splits a page into two lists; within a page, key order then newest first.
        merged = [(v, False) for v in page.get("Versions", [])] + [
            (m, True) for m in page.get("DeleteMarkers", [])
        ]
        position = {(e.key, e.version_id): i for i, e in enumerate(history)}
        merged.sort(key=lambda item: position[(item[0]["Key"], item[0]["VersionId"])])
        seen += [(v["Key"], v["VersionId"], v["IsLatest"], marker) for v, marker in merged]
    assert seen == [(e.key, e.version_id, e.is_latest, e.is_marker) for e in history]


# ---- DeleteObjects with version ids ---------------------------------------------------------


def test_delete_objects_with_version_ids(s3: Any, bucket: str) -> None:
    enable(s3, bucket)
    a1 = put(s3, bucket, "a", b"a1")
    a2 = put(s3, bucket, "a", b"a2")
    b1 = put(s3, bucket, "b", b"b1")
    c_marker = s3.delete_object(Bucket=bucket, Key="c")["VersionId"]
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "VersionId": a1},  # an old version, for good
                {"Key": "b"},  # no version: a new delete marker
                {"Key": "c", "VersionId": c_marker},  # removing a delete marker
            ]
        },
    )
    assert "Errors" not in result
    deleted = {d["Key"]: d for d in result["Deleted"]}
    assert deleted["a"]["VersionId"] == a1
    assert not deleted["a"].get("DeleteMarker", False)
    assert "DeleteMarkerVersionId" not in deleted["a"]

    assert deleted["b"]["DeleteMarker"] is True
    b_marker = deleted["b"]["DeleteMarkerVersionId"]
    assert b_marker not in (None, "null", b1)
    assert "VersionId" not in deleted["b"]

    assert deleted["c"]["VersionId"] == c_marker
    assert deleted["c"]["DeleteMarker"] is True
    assert deleted["c"]["DeleteMarkerVersionId"] == c_marker

    versions, markers = all_versions_via_boto(s3, bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions] == [
        ("a", a2, True),
        ("b", b1, False),
    ]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in markers] == [("b", b_marker, True)]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a"]

    quiet = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [{"Key": "a", "VersionId": a2}, {"Key": "b", "VersionId": b1}],
            "Quiet": True,
        },
    )
    assert "Deleted" not in quiet and "Errors" not in quiet
    versions, markers = all_versions_via_boto(s3, bucket)
    assert versions == [] and len(markers) == 1
