"""Listing properties through the real node: boto3's paginators over ListObjectsV2 and
ListObjectVersions return exactly what a plain Python model says, whatever the page size."""

from __future__ import annotations

import itertools
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.s3util import expected_listing

ALPHABET = "ab/é😀"
KEYS = st.text(alphabet=ALPHABET, min_size=1, max_size=4)
_buckets = itertools.count()

PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def s3_order(key: str) -> bytes:
    return key.encode()


scenario = st.fixed_dictionaries(
    {
        "writes": st.lists(
            st.tuples(KEYS, st.sampled_from(["put", "put", "delete"])), min_size=1, max_size=14
        ),
        "prefix": st.sampled_from(["", "a", "b/", "é"]) | st.text(alphabet=ALPHABET, max_size=2),
        "delimiter": st.sampled_from(["", "/", "a"]),
        "page_size": st.integers(1, 5),
    }
)


def new_bucket(s3: Any, versioned: bool) -> str:
    name = f"lprop-{os.getpid()}-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def listing_args(case: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"PaginationConfig": {"PageSize": case["page_size"]}}
    if case["prefix"]:
        args["Prefix"] = case["prefix"]
    if case["delimiter"]:
        args["Delimiter"] = case["delimiter"]
    return args


@PROPERTY_SETTINGS
@given(case=scenario)
def test_list_objects_v2_paginator_matches_model(s3: Any, case: dict[str, Any]) -> None:
    bucket = new_bucket(s3, versioned=False)
    present: set[str] = set()
    for key, action in case["writes"]:
        if action == "put":
            s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
            present.add(key)
        else:
            s3.delete_object(Bucket=bucket, Key=key)
            present.discard(key)
    expected = expected_listing(sorted(present, key=s3_order), case["prefix"], case["delimiter"])

    keys: list[str] = []
    prefixes: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing_args(case)):
        contents = [o["Key"] for o in page.get("Contents", [])]
        common = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert len(contents) + len(common) <= case["page_size"]
        assert page["KeyCount"] == len(contents) + len(common)
        keys += contents
        prefixes += common
    assert (keys, prefixes) == expected


@PROPERTY_SETTINGS
@given(case=scenario)
def test_list_object_versions_paginator_matches_model(s3: Any, case: dict[str, Any]) -> None:
    bucket = new_bucket(s3, versioned=True)
    history: dict[str, list[tuple[str, bool]]] = {}  # key -> [(version id, marker)], oldest first
    for key, action in case["writes"]:
        if action == "put":
            version = s3.put_object(Bucket=bucket, Key=key, Body=key.encode())["VersionId"]
            history.setdefault(key, []).append((version, False))
        else:
            response = s3.delete_object(Bucket=bucket, Key=key)
            assert response["DeleteMarker"] is True
            history.setdefault(key, []).append((response["VersionId"], True))

    keys, expected_prefixes = expected_listing(
        sorted(history, key=s3_order), case["prefix"], case["delimiter"]
    )
    expected = [
        (key, version, index == 0, marker)
        for key in keys
        for index, (version, marker) in enumerate(reversed(history[key]))
    ]
    position = {(key, version): i for i, (key, version, _l, _m) in enumerate(expected)}

    seen: list[tuple[str, str, bool, bool]] = []
    prefixes: list[str] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, **listing_args(case)):
        versions = [
            (v["Key"], v["VersionId"], v["IsLatest"], False) for v in page.get("Versions", [])
        ]
        markers = [
            (m["Key"], m["VersionId"], m["IsLatest"], True) for m in page.get("DeleteMarkers", [])
        ]
        common = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert len(versions) + len(markers) + len(common) <= case["page_size"]
        # boto3 splits a page in two lists; each must be in listing order on its own.
        for entries in (versions, markers):
            order = [position.get((key, version), -1) for key, version, _l, _m in entries]
            assert order == sorted(order), entries
        seen += sorted(versions + markers, key=lambda e: position.get((e[0], e[1]), -1))
        prefixes += common
    assert seen == expected
    assert prefixes == expected_prefixes
