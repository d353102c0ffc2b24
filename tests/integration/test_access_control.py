"""Access control end to end: keys managed by ``lakenode keys`` beside a running node, owners,
key scopes, bucket policies with each condition operator, public buckets, and secrets.

One node for the module; every test makes its own keys and buckets, so the order of tests
does not matter (except that the log and file checks at the end see everything before them).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.settings import owner_id
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

REPO = Path(__file__).resolve().parents[2]
KEY_VISIBLE_WITHIN_S = 1.5  # the node polls every 0.5 s; the issue says "within a second"
POLL_LIMIT_S = 2.0
FAR_FUTURE = "2999-01-01T00:00:00Z"

_names = itertools.count()


def unique(stem: str) -> str:
    return f"{stem}-{next(_names)}-{secrets.token_hex(2)}"


def client_for(url: str, access_key: str, secret_key: str) -> Any:
    """A boto3 client signing with the given pair (conftest.make_client uses the root key)."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4"),
    )


def outcome(call: Callable[..., Any], **kwargs: Any) -> tuple[int, str]:
    """(HTTP status, "OK" or the S3 error code) of a boto3 call."""
    try:
        response = call(**kwargs)
    except ClientError as exc:
        meta = exc.response["ResponseMetadata"]
        return int(meta["HTTPStatusCode"]), str(exc.response["Error"]["Code"])
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), "OK"


def assert_ok(call: Callable[..., Any], **kwargs: Any) -> None:
    status, code = outcome(call, **kwargs)
    assert code == "OK" and status < 300, (call.__name__, kwargs, status, code)


def assert_denied(call: Callable[..., Any], **kwargs: Any) -> None:
    status, code = outcome(call, **kwargs)
    # HEAD errors carry no body: botocore reports the status as the code.
    assert (status, code) in ((403, "AccessDenied"), (403, "403")), (call.__name__, kwargs, code)


def error_code(response: httpx.Response) -> str:
    match = re.search(r"<Code>([^<]*)</Code>", response.text)
    return match.group(1) if match else ""


def wait_for(check: Callable[[], bool], limit_s: float = POLL_LIMIT_S) -> float:
    """Poll ``check`` until it holds; return how long that took (fail after ``limit_s``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit_s:
            raise AssertionError(f"still not true after {limit_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


def run_keys(data_dir: Path, action: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``lakenode keys ACTION ... --data-dir D`` as its own process, as an operator runs it."""
    command = [sys.executable, "-m", "node", "keys", action, *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)


def keys_ok(data_dir: Path, action: str, *args: str) -> str:
    done = run_keys(data_dir, action, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Key:
    access_key: str
    secret_key: str
    client: Any


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("access") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def root(node: NodeProcess) -> Any:
    return client_for(node.url, ACCESS_KEY, SECRET_KEY)


CREATED_SECRETS: list[str] = []


@pytest.fixture(scope="module")
def make_key(node: NodeProcess) -> Callable[..., Key]:
    """Create a key with ``lakenode keys create`` while the node runs; wait until it works."""

    def make(stem: str, *limits: str) -> Key:
        access, secret = unique(stem), "s3cr3t-" + secrets.token_urlsafe(24)
        CREATED_SECRETS.append(secret)
        keys_ok(node.data_dir, "create", "--access-key", access, "--secret-key", secret, *limits)
        client = client_for(node.url, access, secret)
        took = wait_for(lambda: outcome(client.list_buckets)[1] != "InvalidAccessKeyId")
        assert took < KEY_VISIBLE_WITHIN_S, f"new key took {took:.2f} s to work"
        return Key(access, secret, client)

    return make


def root_bucket(root: Any, stem: str, objects: dict[str, bytes] | None = None) -> str:
    name = unique(stem)
    root.create_bucket(Bucket=name)
    for key, body in (objects or {"obj": b"data"}).items():
        root.put_object(Bucket=name, Key=key, Body=body)
    return name


def put_policy(client: Any, bucket: str, *statements: dict[str, Any]) -> None:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))


def allow(principal: Any, action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": resource,
        **extra,
    }


def names_listed(client: Any) -> set[str]:
    return {b["Name"] for b in client.list_buckets()["Buckets"]}


# ---- owners ----------------------------------------------------------------------------------


def test_key_owns_the_buckets_it_creates(root: Any, make_key: Callable[..., Key]) -> None:
    a = make_key("owner-a")
    mine = unique("a-bucket")
    a.client.create_bucket(Bucket=mine)
    a.client.put_object(Bucket=mine, Key="doc.txt", Body=b"a's data")
    private = root_bucket(root, "root-private")
    expected_owner = {"ID": owner_id(a.access_key), "DisplayName": a.access_key}

    listed = a.client.list_buckets()
    assert listed["Owner"] == expected_owner
    names = {b["Name"] for b in listed["Buckets"]}
    assert mine in names and private not in names

    acl = a.client.get_bucket_acl(Bucket=mine)
    assert acl["Owner"] == expected_owner
    assert [(g["Grantee"]["ID"], g["Grantee"]["Type"], g["Permission"]) for g in acl["Grants"]] == [
        (owner_id(a.access_key), "CanonicalUser", "FULL_CONTROL")
    ]
    object_acl = a.client.get_object_acl(Bucket=mine, Key="doc.txt")
    assert object_acl["Owner"] == expected_owner
    assert [g["Permission"] for g in object_acl["Grants"]] == ["FULL_CONTROL"]

    v1 = a.client.list_objects(Bucket=mine)
    assert [c["Owner"] for c in v1["Contents"]] == [expected_owner]
    v2 = a.client.list_objects_v2(Bucket=mine, FetchOwner=True)
    assert [c["Owner"] for c in v2["Contents"]] == [expected_owner]
    # Root's view of A's bucket names A as the owner, and root's ListBuckets names root.
    assert root.get_bucket_acl(Bucket=mine)["Owner"] == expected_owner
    root_listed = root.list_buckets()
    assert root_listed["Owner"]["DisplayName"] == ACCESS_KEY
    assert {mine, private} <= {b["Name"] for b in root_listed["Buckets"]}


def test_root_reaches_every_bucket(root: Any, make_key: Callable[..., Key]) -> None:
    a = make_key("owner-a")
    mine = unique("a-bucket")
    a.client.create_bucket(Bucket=mine)
    a.client.put_object(Bucket=mine, Key="k", Body=b"a's")
    assert root.get_object(Bucket=mine, Key="k")["Body"].read() == b"a's"
    assert_ok(root.put_object, Bucket=mine, Key="from-root", Body=b"r")
    assert [c["Key"] for c in root.list_objects_v2(Bucket=mine)["Contents"]] == ["from-root", "k"]
    assert_ok(root.delete_object, Bucket=mine, Key="from-root")
    assert_ok(
        root.put_bucket_policy,
        Bucket=mine,
        Policy=json.dumps({"Statement": [allow("*", "s3:GetObject", f"arn:aws:s3:::{mine}/*")]}),
    )
    assert_ok(root.delete_bucket_policy, Bucket=mine)
    assert_ok(root.delete_object, Bucket=mine, Key="k")
    assert_ok(root.delete_bucket, Bucket=mine)


def test_other_key_cannot_see_or_touch_a_bucket(root: Any, make_key: Callable[..., Key]) -> None:
    a, b = make_key("owner-a"), make_key("stranger-b")
    mine = unique("a-bucket")
    a.client.create_bucket(Bucket=mine)
    a.client.put_object(Bucket=mine, Key="k", Body=b"a's")

    assert mine not in names_listed(b.client)
    assert b.client.list_buckets()["Owner"]["ID"] == owner_id(b.access_key)
    for call, kwargs in [
        (b.client.list_objects_v2, {"Bucket": mine}),
        (b.client.list_objects, {"Bucket": mine}),
        (b.client.head_bucket, {"Bucket": mine}),
        (b.client.get_object, {"Bucket": mine, "Key": "k"}),
        (b.client.head_object, {"Bucket": mine, "Key": "k"}),
        (b.client.put_object, {"Bucket": mine, "Key": "k", "Body": b"b's"}),
        (b.client.put_object, {"Bucket": mine, "Key": "new", "Body": b"b's"}),
        (b.client.delete_object, {"Bucket": mine, "Key": "k"}),
        (b.client.get_bucket_acl, {"Bucket": mine}),
        (b.client.get_object_acl, {"Bucket": mine, "Key": "k"}),
        (b.client.get_bucket_policy, {"Bucket": mine}),
        (
            b.client.put_bucket_policy,
            {
                "Bucket": mine,
                "Policy": json.dumps({"Statement": [allow("*", "s3:*", f"arn:aws:s3:::{mine}/*")]}),
            },
        ),
        (b.client.delete_bucket, {"Bucket": mine}),
    ]:
        assert_denied(call, **kwargs)
    # Nothing B tried took effect.
    assert a.client.get_object(Bucket=mine, Key="k")["Body"].read() == b"a's"
    assert [c["Key"] for c in a.client.list_objects_v2(Bucket=mine)["Contents"]] == ["k"]
    assert outcome(a.client.get_bucket_policy, Bucket=mine) == (404, "NoSuchBucketPolicy")
    # A missing bucket is still NoSuchBucket, for anyone.
    assert outcome(b.client.list_objects_v2, Bucket=unique("missing")) == (404, "NoSuchBucket")


def test_bucket_policy_shares_a_prefix_with_another_key(make_key: Callable[..., Key]) -> None:
    a, b, c = make_key("owner-a"), make_key("reader-b"), make_key("other-c")
    mine = unique("a-shared")
    a.client.create_bucket(Bucket=mine)
    for key in ("public/one", "private/two"):
        a.client.put_object(Bucket=mine, Key=key, Body=key.encode())
    put_policy(
        a.client,
        mine,
        allow(
            {"AWS": [f"arn:aws:iam::000000000000:user/{b.access_key}"]},
            "s3:GetObject",
            f"arn:aws:s3:::{mine}/public/*",
        ),
    )
    assert b.client.get_object(Bucket=mine, Key="public/one")["Body"].read() == b"public/one"
    assert_ok(b.client.head_object, Bucket=mine, Key="public/one")
    assert_denied(b.client.get_object, Bucket=mine, Key="private/two")
    assert_denied(b.client.put_object, Bucket=mine, Key="public/new", Body=b"x")
    assert_denied(b.client.delete_object, Bucket=mine, Key="public/one")
    assert_denied(b.client.list_objects_v2, Bucket=mine)
    assert mine not in names_listed(b.client)  # GetObject is not ListBucket
    assert_denied(c.client.get_object, Bucket=mine, Key="public/one")
    # The owner keeps everything.
    assert_ok(a.client.put_object, Bucket=mine, Key="private/three", Body=b"3")


# ---- key scopes --------------------------------------------------------------------------------


def test_read_only_key(root: Any, make_key: Callable[..., Key]) -> None:
    shared = root_bucket(root, "ro", {"a": b"A", "b": b"B"})
    ro = make_key("read-only", "--read-only", "--bucket", shared)
    assert ro.client.get_object(Bucket=shared, Key="a")["Body"].read() == b"A"
    assert_ok(ro.client.head_object, Bucket=shared, Key="b")
    assert_ok(ro.client.head_bucket, Bucket=shared)
    assert [c["Key"] for c in ro.client.list_objects_v2(Bucket=shared)["Contents"]] == ["a", "b"]
    assert names_listed(ro.client) >= {shared}
    assert_denied(ro.client.put_object, Bucket=shared, Key="a", Body=b"changed")
    assert_denied(ro.client.put_object, Bucket=shared, Key="c", Body=b"new")
    assert_denied(ro.client.delete_object, Bucket=shared, Key="a")
    assert_denied(
        ro.client.put_bucket_policy,
        Bucket=shared,
        Policy=json.dumps({"Statement": [allow("*", "s3:*", f"arn:aws:s3:::{shared}/*")]}),
    )
    assert_denied(ro.client.create_bucket, Bucket=unique("ro-new"))
    assert root.get_object(Bucket=shared, Key="a")["Body"].read() == b"A"
    assert [c["Key"] for c in root.list_objects_v2(Bucket=shared)["Contents"]] == ["a", "b"]


def test_bucket_limited_key(root: Any, make_key: Callable[..., Key]) -> None:
    inside = root_bucket(root, "lim-in")
    outside = root_bucket(root, "lim-out")
    later = unique("lim-later")  # on the key's list, not created yet
    lim = make_key("limited", "--bucket", inside, "--bucket", later)

    assert_ok(lim.client.put_object, Bucket=inside, Key="new", Body=b"n")
    assert lim.client.get_object(Bucket=inside, Key="new")["Body"].read() == b"n"
    assert_ok(lim.client.list_objects_v2, Bucket=inside)
    assert_ok(lim.client.delete_object, Bucket=inside, Key="new")
    listed = names_listed(lim.client)
    assert inside in listed and outside not in listed

    assert_denied(lim.client.get_object, Bucket=outside, Key="obj")
    assert_denied(lim.client.put_object, Bucket=outside, Key="new", Body=b"n")
    assert_denied(lim.client.list_objects_v2, Bucket=outside)
    assert_denied(lim.client.create_bucket, Bucket=unique("lim-other"))
    assert_ok(lim.client.create_bucket, Bucket=later)
    assert_ok(lim.client.put_object, Bucket=later, Key="k", Body=b"k")


def test_identity_policy_file(
    root: Any, node: NodeProcess, make_key: Callable[..., Key], tmp_path: Path
) -> None:
    readable = root_bucket(root, "pol-read", {"doc": b"readable"})
    other = root_bucket(root, "pol-other", {"doc": b"other"})
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{readable}/*",
                    },
                    {
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": f"arn:aws:s3:::{readable}",
                    },
                    {
                        "Effect": "Allow",
                        "Action": "s3:ListAllMyBuckets",
                        "Resource": "arn:aws:s3:::*",
                    },
                ],
            }
        )
    )
    pk = make_key("policy-key", "--policy", str(policy))
    shown = json.loads(keys_ok(node.data_dir, "show", pk.access_key))
    assert shown["policy"]["Statement"][0]["Action"] == "s3:GetObject"

    assert pk.client.get_object(Bucket=readable, Key="doc")["Body"].read() == b"readable"
    assert [c["Key"] for c in pk.client.list_objects_v2(Bucket=readable)["Contents"]] == ["doc"]
    listed = names_listed(pk.client)
    assert readable in listed and other not in listed
    assert_denied(pk.client.put_object, Bucket=readable, Key="doc", Body=b"x")
    assert_denied(pk.client.delete_object, Bucket=readable, Key="doc")
    assert_denied(pk.client.get_object, Bucket=other, Key="doc")
    assert_denied(pk.client.list_objects_v2, Bucket=other)
    # The policy replaces ownership: this key may not create buckets at all.
    assert_denied(pk.client.create_bucket, Bucket=unique("pol-new"))


# ---- key lifecycle beside the running node -----------------------------------------------------


def test_disable_enable_delete_take_effect_without_restart(
    root: Any, node: NodeProcess, make_key: Callable[..., Key]
) -> None:
    k = make_key("lifecycle")
    mine = unique("life")
    k.client.create_bucket(Bucket=mine)
    k.client.put_object(Bucket=mine, Key="k", Body=b"v")

    keys_ok(node.data_dir, "disable", k.access_key)
    took = wait_for(lambda: outcome(k.client.get_object, Bucket=mine, Key="k")[1] != "OK")
    assert took < KEY_VISIBLE_WITHIN_S
    assert outcome(k.client.get_object, Bucket=mine, Key="k") == (403, "AccessDenied")
    assert outcome(k.client.list_buckets) == (403, "AccessDenied")
    assert outcome(k.client.put_object, Bucket=mine, Key="k2", Body=b"x") == (403, "AccessDenied")
    # A wrong secret for a disabled key is still a signature mismatch, not a hint.
    wrong = client_for(node.url, k.access_key, "not-the-secret")
    assert outcome(wrong.list_buckets) == (403, "SignatureDoesNotMatch")
    assert json.loads(keys_ok(node.data_dir, "show", k.access_key))["status"] == "disabled"

    keys_ok(node.data_dir, "enable", k.access_key)
    took = wait_for(lambda: outcome(k.client.get_object, Bucket=mine, Key="k")[1] == "OK")
    assert took < KEY_VISIBLE_WITHIN_S
    assert_ok(k.client.put_object, Bucket=mine, Key="k2", Body=b"x")

    keys_ok(node.data_dir, "delete", k.access_key)
    took = wait_for(lambda: outcome(k.client.list_buckets)[1] != "OK")
    assert took < KEY_VISIBLE_WITHIN_S
    assert outcome(k.client.list_buckets) == (403, "InvalidAccessKeyId")
    assert outcome(k.client.get_object, Bucket=mine, Key="k") == (403, "InvalidAccessKeyId")
    assert run_keys(node.data_dir, "show", k.access_key).returncode == 1
    # The bucket and its data outlive the key; root still reaches them.
    assert root.get_object(Bucket=mine, Key="k2")["Body"].read() == b"x"


def test_generated_pair_is_printed_and_works(node: NodeProcess) -> None:
    printed = keys_ok(node.data_dir, "create")
    match = re.fullmatch(r"access key: (\S+)\nsecret key: (\S+)\n", printed)
    assert match, printed
    access, secret = match.groups()
    CREATED_SECRETS.append(secret)
    client = client_for(node.url, access, secret)
    took = wait_for(lambda: outcome(client.list_buckets)[1] == "OK")
    assert took < KEY_VISIBLE_WITHIN_S
    assert client.list_buckets()["Owner"]["DisplayName"] == access
    second = keys_ok(node.data_dir, "create", "--json")
    described = json.loads(second)
    CREATED_SECRETS.append(described["secret_key"])
    assert described["access_key"] != access and described["secret_key"] != secret
    assert described["status"] == "active"


def test_create_on_a_stopped_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    secret = "stopped-" + secrets.token_urlsafe(20)
    CREATED_SECRETS.append(secret)
    keys_ok(data_dir, "create", "--access-key", "offline-key", "--secret-key", secret)
    assert stat.S_IMODE((data_dir / "meta.db").stat().st_mode) == 0o600
    fresh = NodeProcess(data_dir).start()
    try:
        client = client_for(fresh.url, "offline-key", secret)
        client.create_bucket(Bucket="offline-bucket")  # at once: loaded at startup
        assert client.list_buckets()["Owner"]["DisplayName"] == "offline-key"
        assert_ok(client.put_object, Bucket="offline-bucket", Key="k", Body=b"v")
    finally:
        fresh.stop()
    assert secret not in fresh.log_path.read_text(errors="replace")


def test_create_with_malformed_policy_file(node: NodeProcess, tmp_path: Path) -> None:
    policies = {
        "bad-json": "{not json",
        "non-s3": json.dumps(
            {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
        ),
        "principal": json.dumps({"Statement": [allow("*", "s3:*", "*")]}),
    }
    for name, text in policies.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        done = run_keys(
            node.data_dir,
            "create",
            "--access-key",
            f"bad-{name}",
            "--secret-key",
            "whatever-secret",
            "--policy",
            str(path),
        )
        assert done.returncode == 2, (name, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and "policy" in lines[0].lower(), (name, done.stderr)
        assert "whatever-secret" not in done.stderr
    missing = run_keys(node.data_dir, "create", "--policy", str(tmp_path / "missing.json"))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    listed = keys_ok(node.data_dir, "list")
    assert "bad-" not in listed


# ---- bucket policies -----------------------------------------------------------------------------


def test_policy_round_trip(make_key: Callable[..., Key]) -> None:
    a = make_key("policy-owner")
    mine = unique("roundtrip")
    a.client.create_bucket(Bucket=mine)
    assert outcome(a.client.get_bucket_policy, Bucket=mine) == (404, "NoSuchBucketPolicy")
    document = {
        "Version": "2012-10-17",
        "Statement": [
            allow("*", "s3:GetObject", f"arn:aws:s3:::{mine}/*", Sid="PublicRead"),
        ],
    }
    a.client.put_bucket_policy(Bucket=mine, Policy=json.dumps(document))
    assert json.loads(a.client.get_bucket_policy(Bucket=mine)["Policy"]) == document
    replaced = {"Statement": [allow("*", "s3:ListBucket", f"arn:aws:s3:::{mine}")]}
    a.client.put_bucket_policy(Bucket=mine, Policy=json.dumps(replaced))
    assert json.loads(a.client.get_bucket_policy(Bucket=mine)["Policy"]) == replaced
    assert outcome(a.client.delete_bucket_policy, Bucket=mine) == (204, "OK")
    assert outcome(a.client.get_bucket_policy, Bucket=mine) == (404, "NoSuchBucketPolicy")
    assert outcome(a.client.delete_bucket_policy, Bucket=mine) == (204, "OK")
    missing = unique("missing")
    assert outcome(a.client.get_bucket_policy, Bucket=missing) == (404, "NoSuchBucket")


@pytest.mark.parametrize(
    "policy",
    [
        "{not json",
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
        json.dumps({"Statement": [allow("*", "s3:GetObject", "arn:aws:s3:::elsewhere/*")]}),
        json.dumps({"Statement": [allow("*", "sqs:SendMessage", "*")]}),
        json.dumps({"Statement": [{**allow("*", "s3:GetObject", "*"), "Effect": "Maybe"}]}),
        json.dumps(
            {
                "Statement": [
                    allow(
                        "*", "s3:GetObject", "*", Condition={"NumericSortOf": {"s3:max-keys": "5"}}
                    )
                ]
            }
        ),
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:PutObject",
                        "NotAction": "s3:GetObject",
                        "Resource": "*",
                    }
                ]
            }
        ),
    ],
    ids=[
        "json",
        "no-statement",
        "no-principal",
        "other-bucket",
        "non-s3",
        "effect",
        "operator",
        "action-and-notaction",
    ],
)
def test_malformed_policy_is_refused(root: Any, policy: str) -> None:
    mine = root_bucket(root, "malformed")
    good = {"Statement": [allow("*", "s3:GetObject", f"arn:aws:s3:::{mine}/*")]}
    root.put_bucket_policy(Bucket=mine, Policy=json.dumps(good))
    assert outcome(root.put_bucket_policy, Bucket=mine, Policy=policy) == (
        400,
        "MalformedPolicy",
    )
    assert json.loads(root.get_bucket_policy(Bucket=mine)["Policy"]) == good  # unchanged


def test_explicit_deny_beats_the_owner(make_key: Callable[..., Key]) -> None:
    a = make_key("deny-owner")
    mine = unique("deny")
    a.client.create_bucket(Bucket=mine)
    for key in ("keep/precious", "tmp/scratch"):
        a.client.put_object(Bucket=mine, Key=key, Body=b"x")
    put_policy(
        a.client,
        mine,
        {
            "Effect": "Deny",
            "Principal": {"AWS": a.access_key},
            "Action": ["s3:DeleteObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{mine}/keep/*",
        },
    )
    assert_denied(a.client.delete_object, Bucket=mine, Key="keep/precious")
    assert_denied(a.client.put_object, Bucket=mine, Key="keep/precious", Body=b"overwrite")
    assert_ok(a.client.get_object, Bucket=mine, Key="keep/precious")
    assert_ok(a.client.delete_object, Bucket=mine, Key="tmp/scratch")
    # The owner can still take the policy away, and then the delete works.
    assert_ok(a.client.delete_bucket_policy, Bucket=mine)
    assert_ok(a.client.delete_object, Bucket=mine, Key="keep/precious")


@pytest.fixture(scope="module")
def conditions_bucket(root: Any) -> str:
    return root_bucket(root, "cond", {"docs/a.txt": b"a", "img/b.png": b"b", "top": b"t"})


@pytest.fixture(scope="module")
def guest(make_key: Callable[..., Key]) -> Key:
    """A key with no rights of its own on root's buckets: only bucket policies admit it."""
    return make_key("guest")


@pytest.mark.parametrize(
    ("condition", "prefix", "expected"),
    [
        ({"StringLike": {"s3:prefix": "docs/*"}}, "docs/", True),
        ({"StringLike": {"s3:prefix": "docs/*"}}, "img/", False),
        ({"StringLike": {"s3:prefix": "docs/*"}}, None, False),
        ({"StringLike": {"s3:prefix": ["docs/*", "img/*"]}}, "img/", True),
        ({"StringEquals": {"s3:prefix": "docs/"}}, "docs/", True),
        ({"StringEquals": {"s3:prefix": "docs/"}}, "docs/x", False),
        ({"StringNotLike": {"s3:prefix": "img/*"}}, "docs/", True),
        ({"StringNotLike": {"s3:prefix": "img/*"}}, "img/", False),
        ({"StringNotLike": {"s3:prefix": "img/*"}}, None, True),
    ],
)
def test_prefix_conditions_on_list_bucket(
    root: Any,
    conditions_bucket: str,
    guest: Key,
    condition: dict[str, Any],
    prefix: str | None,
    expected: bool,
) -> None:
    arn = f"arn:aws:s3:::{conditions_bucket}"
    put_policy(
        root,
        conditions_bucket,
        allow({"AWS": guest.access_key}, "s3:ListBucket", arn, Condition=condition),
    )
    kwargs = {"Bucket": conditions_bucket} | ({"Prefix": prefix} if prefix is not None else {})
    if expected:
        listed = guest.client.list_objects_v2(**kwargs)
        assert [c["Key"] for c in listed["Contents"]] == [
            k for k in ("docs/a.txt", "img/b.png", "top") if k.startswith(prefix or "")
        ]
        assert_ok(guest.client.list_objects, **kwargs)
    else:
        assert_denied(guest.client.list_objects_v2, **kwargs)
        assert_denied(guest.client.list_objects, **kwargs)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}, True),
        ({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "127.0.0.1/32"]}}, True),
        ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "127.0.0.1/32"}}, False),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, True),  # we serve plain http here
        ({"Bool": {"aws:SecureTransport": "true"}}, False),
        ({"DateLessThan": {"aws:CurrentTime": FAR_FUTURE}}, True),
        ({"DateGreaterThan": {"aws:CurrentTime": FAR_FUTURE}}, False),
        ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, True),
        (
            {
                "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                "DateGreaterThan": {"aws:CurrentTime": FAR_FUTURE},
            },
            False,
        ),
    ],
)
def test_request_conditions_on_get_object(
    root: Any, conditions_bucket: str, guest: Key, condition: dict[str, Any], expected: bool
) -> None:
    arn = f"arn:aws:s3:::{conditions_bucket}/*"
    put_policy(
        root,
        conditions_bucket,
        allow({"AWS": guest.access_key}, "s3:GetObject", arn, Condition=condition),
    )
    if expected:
        assert guest.client.get_object(Bucket=conditions_bucket, Key="top")["Body"].read() == b"t"
    else:
        assert_denied(guest.client.get_object, Bucket=conditions_bucket, Key="top")


def test_deny_insecure_transport_beats_the_owner(make_key: Callable[..., Key]) -> None:
    a = make_key("tls-owner")
    mine = unique("tls")
    a.client.create_bucket(Bucket=mine)
    a.client.put_object(Bucket=mine, Key="k", Body=b"v")
    put_policy(
        a.client,
        mine,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{mine}/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    assert_denied(a.client.get_object, Bucket=mine, Key="k")
    assert_ok(a.client.put_object, Bucket=mine, Key="k2", Body=b"v")


# ---- public buckets ------------------------------------------------------------------------------


def test_public_bucket_serves_anonymous_reads_only(root: Any, node: NodeProcess) -> None:
    public = root_bucket(root, "public", {"index.html": b"<h1>hi</h1>", "docs/a": b"a"})
    private = root_bucket(root, "private", {"index.html": b"secret"})
    put_policy(
        root,
        public,
        allow("*", "s3:GetObject", f"arn:aws:s3:::{public}/*"),
        allow("*", "s3:ListBucket", f"arn:aws:s3:::{public}"),
    )
    base = node.url
    got = httpx.get(f"{base}/{public}/index.html")
    assert got.status_code == 200 and got.content == b"<h1>hi</h1>"
    head = httpx.head(f"{base}/{public}/index.html")
    assert head.status_code == 200 and head.headers["content-length"] == "11"
    for query in ("", "?list-type=2", "?list-type=2&prefix=docs/"):
        listed = httpx.get(f"{base}/{public}{query}")
        assert listed.status_code == 200, listed.text
        assert "<Key>docs/a</Key>" in listed.text
    assert httpx.head(f"{base}/{public}").status_code == 200

    put = httpx.put(f"{base}/{public}/index.html", content=b"defaced")
    assert (put.status_code, error_code(put)) == (403, "AccessDenied")
    put_new = httpx.put(f"{base}/{public}/new", content=b"x")
    assert (put_new.status_code, error_code(put_new)) == (403, "AccessDenied")
    delete = httpx.delete(f"{base}/{public}/index.html")
    assert (delete.status_code, error_code(delete)) == (403, "AccessDenied")
    policy = httpx.get(f"{base}/{public}?policy")
    assert (policy.status_code, error_code(policy)) == (403, "AccessDenied")
    assert root.get_object(Bucket=public, Key="index.html")["Body"].read() == b"<h1>hi</h1>"
    assert outcome(root.head_object, Bucket=public, Key="new") == (404, "404")

    denied = httpx.get(f"{base}/{private}/index.html")
    assert (denied.status_code, error_code(denied)) == (403, "AccessDenied")
    assert b"secret" not in denied.content
    assert httpx.head(f"{base}/{private}/index.html").status_code == 403
    listing = httpx.get(f"{base}/{private}?list-type=2")
    assert (listing.status_code, error_code(listing)) == (403, "AccessDenied")
    everything = httpx.get(f"{base}/")
    assert (everything.status_code, error_code(everything)) == (403, "AccessDenied")
    create = httpx.put(f"{base}/{unique('anon')}")
    assert (create.status_code, error_code(create)) == (403, "AccessDenied")


def test_anonymous_writes_follow_the_bucket_policy(root: Any, node: NodeProcess) -> None:
    """As on AWS: what a bucket policy grants to "*" unsigned requests may do, writes
    included, on the resources it names; a bucket policy itself stays the owner's."""
    public = root_bucket(root, "anon-write", {"k": b"v", "other/k": b"o"})
    put_policy(
        root,
        public,
        allow(
            "*", ["s3:PutObject", "s3:DeleteObject", "s3:GetObject"], f"arn:aws:s3:::{public}/k*"
        ),
    )
    assert httpx.get(f"{node.url}/{public}/k").content == b"v"
    put = httpx.put(f"{node.url}/{public}/k2", content=b"anon")
    assert put.status_code == 200, put.text
    assert root.get_object(Bucket=public, Key="k2")["Body"].read() == b"anon"
    delete = httpx.delete(f"{node.url}/{public}/k")
    assert delete.status_code == 204, delete.text
    outside = httpx.put(f"{node.url}/{public}/other/k", content=b"anon")
    assert (outside.status_code, error_code(outside)) == (403, "AccessDenied")
    assert root.get_object(Bucket=public, Key="other/k")["Body"].read() == b"o"
    put_policy(
        root, public, allow("*", ["s3:*"], [f"arn:aws:s3:::{public}", f"arn:aws:s3:::{public}/*"])
    )
    policy_read = httpx.get(f"{node.url}/{public}?policy")
    assert (policy_read.status_code, error_code(policy_read)) == (403, "AccessDenied")
    policy_delete = httpx.delete(f"{node.url}/{public}?policy")
    assert (policy_delete.status_code, error_code(policy_delete)) == (403, "AccessDenied")


# ---- operations that touch two resources ---------------------------------------------------


def test_copy_needs_read_permission_on_the_source(root: Any, make_key: Callable[..., Key]) -> None:
    source = root_bucket(root, "copy-src", {"secret": b"root's", "shared/ok": b"shared"})
    d = make_key("copier")
    mine = unique("copy-dst")
    d.client.create_bucket(Bucket=mine)
    d.client.put_object(Bucket=mine, Key="own", Body=b"own")
    assert_ok(d.client.copy_object, Bucket=mine, Key="own-copy", CopySource=f"{mine}/own")

    assert_denied(
        d.client.copy_object,
        Bucket=mine,
        Key="stolen",
        CopySource={"Bucket": source, "Key": "secret"},
    )
    upload = d.client.create_multipart_upload(Bucket=mine, Key="mp")["UploadId"]
    assert_denied(
        d.client.upload_part_copy,
        Bucket=mine,
        Key="mp",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": source, "Key": "secret"},
    )
    d.client.abort_multipart_upload(Bucket=mine, Key="mp", UploadId=upload)
    assert outcome(d.client.head_object, Bucket=mine, Key="stolen") == (404, "404")

    put_policy(
        root,
        source,
        allow({"AWS": d.access_key}, "s3:GetObject", f"arn:aws:s3:::{source}/shared/*"),
    )
    assert_ok(
        d.client.copy_object,
        Bucket=mine,
        Key="copied",
        CopySource={"Bucket": source, "Key": "shared/ok"},
    )
    assert d.client.get_object(Bucket=mine, Key="copied")["Body"].read() == b"shared"
    assert_denied(
        d.client.copy_object,
        Bucket=mine,
        Key="stolen",
        CopySource={"Bucket": source, "Key": "secret"},
    )
    # Reading the source is not enough: the destination must be writable too.
    assert_denied(
        d.client.copy_object,
        Bucket=source,
        Key="shared/dup",
        CopySource={"Bucket": source, "Key": "shared/ok"},
    )


def test_delete_objects_reports_access_denied_per_key(make_key: Callable[..., Key]) -> None:
    a, b = make_key("md-owner"), make_key("md-deleter")
    mine = unique("multidelete")
    a.client.create_bucket(Bucket=mine)
    for key in ("public/one", "public/two", "private/three", "keep/four"):
        a.client.put_object(Bucket=mine, Key=key, Body=b"x")
    put_policy(
        a.client,
        mine,
        allow({"AWS": b.access_key}, "s3:DeleteObject", f"arn:aws:s3:::{mine}/public/*"),
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": f"arn:aws:s3:::{mine}/keep/*",
        },
    )

    answer = b.client.delete_objects(
        Bucket=mine, Delete={"Objects": [{"Key": "public/one"}, {"Key": "private/three"}]}
    )
    assert [d["Key"] for d in answer.get("Deleted", [])] == ["public/one"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("private/three", "AccessDenied")]

    # The owner is refused only where the bucket policy's Deny applies.
    answer = a.client.delete_objects(
        Bucket=mine, Delete={"Objects": [{"Key": "keep/four"}, {"Key": "public/two"}]}
    )
    assert [d["Key"] for d in answer.get("Deleted", [])] == ["public/two"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("keep/four", "AccessDenied")]

    remaining = [c["Key"] for c in a.client.list_objects_v2(Bucket=mine)["Contents"]]
    assert remaining == ["keep/four", "private/three"]


# ---- secrets at rest and in output (last: they see everything the tests above did) ------------


def test_catalog_files_are_private(node: NodeProcess) -> None:
    catalog = node.data_dir / "meta.db"
    candidates = [catalog, catalog.with_name("meta.db-wal"), catalog.with_name("meta.db-shm")]
    present = [path for path in candidates if path.exists()]
    assert catalog in present
    for path in present:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert os.stat(catalog).st_uid == os.getuid()


def test_no_secret_in_log_or_key_listings(node: NodeProcess, make_key: Callable[..., Key]) -> None:
    k = make_key("secretive", "--read-only")
    # A failed signature on the way may not echo the secret either.
    assert outcome(client_for(node.url, k.access_key, "wrong-secret-value").list_buckets)[0] == 403
    listed = keys_ok(node.data_dir, "list") + keys_ok(node.data_dir, "list", "--json")
    shown = keys_ok(node.data_dir, "show", k.access_key)
    assert k.access_key in listed and k.access_key in shown
    assert "secret_key" not in json.loads(shown) and '"secret_key"' not in listed
    secrets_used = [SECRET_KEY, *CREATED_SECRETS]
    log = node.log_path.read_text(errors="replace")
    assert k.access_key in log  # the access log names the key id ...
    for secret in secrets_used:  # ... and never a secret
        assert secret not in log
        assert secret not in listed
        assert secret not in shown


# ---- what a denied reader may learn --------------------------------------------------------------


def test_missing_key_is_403_without_list_permission(make_key: Callable[..., Key]) -> None:
    """As on AWS: GET of a missing key tells a reader that cannot list nothing (403, not 404)."""
    owner, reader = make_key("probe-owner"), make_key("probe-reader")
    bucket = unique("probe")
    owner.client.create_bucket(Bucket=bucket)
    owner.client.put_object(Bucket=bucket, Key="pub/exists", Body=b"x")
    grant = allow({"AWS": reader.access_key}, "s3:GetObject", f"arn:aws:s3:::{bucket}/pub/*")
    put_policy(owner.client, bucket, grant)
    assert_ok(reader.client.get_object, Bucket=bucket, Key="pub/exists")
    assert outcome(reader.client.get_object, Bucket=bucket, Key="pub/missing") == (
        403,
        "AccessDenied",
    )
    put_policy(
        owner.client,
        bucket,
        grant,
        allow({"AWS": reader.access_key}, "s3:ListBucket", f"arn:aws:s3:::{bucket}"),
    )
    owner_access_cache_ttl_s = 1.2  # this node's own policy change applies at once; be safe
    wait_for(
        lambda: (
            outcome(reader.client.get_object, Bucket=bucket, Key="pub/missing")[1] == "NoSuchKey"
        ),
        owner_access_cache_ttl_s,
    )
    assert outcome(reader.client.get_object, Bucket=bucket, Key="pub/missing") == (
        404,
        "NoSuchKey",
    )


def test_taken_bucket_name_is_bucket_already_exists(make_key: Callable[..., Key]) -> None:
    first, second = make_key("name-first"), make_key("name-second")
    name = unique("taken")
    first.client.create_bucket(Bucket=name)
    assert outcome(second.client.create_bucket, Bucket=name) == (409, "BucketAlreadyExists")
    # Its owner again: 200 in us-east-1, AWS's legacy behaviour (409 elsewhere).
    assert outcome(first.client.create_bucket, Bucket=name) == (200, "OK")


# ---- policy language: the condition keys of S3 requests -----------------------------------------


def owned_bucket(owner: Key, stem: str, objects: dict[str, bytes] | None = None) -> str:
    name = unique(stem)
    owner.client.create_bucket(Bucket=name)
    for key, body in (objects or {}).items():
        owner.client.put_object(Bucket=name, Key=key, Body=body)
    return name


def test_existing_object_tag_grants_and_protects(make_key: Callable[..., Key]) -> None:
    owner, reader = make_key("tags-owner"), make_key("tags-reader")
    bucket = owned_bucket(owner, "exist-tag", {"shared": b"s", "secret": b"x", "kept": b"k"})
    owner.client.put_object_tagging(
        Bucket=bucket, Key="shared", Tagging={"TagSet": [{"Key": "share", "Value": "yes"}]}
    )
    owner.client.put_object_tagging(
        Bucket=bucket, Key="kept", Tagging={"TagSet": [{"Key": "protected", "Value": "true"}]}
    )
    objects = f"arn:aws:s3:::{bucket}/*"
    put_policy(
        owner.client,
        bucket,
        allow(
            {"AWS": reader.access_key},
            "s3:GetObject",
            objects,
            Condition={"StringEquals": {"s3:ExistingObjectTag/share": "yes"}},
        ),
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": objects,
            "Condition": {"StringEquals": {"s3:ExistingObjectTag/protected": "true"}},
        },
    )
    assert reader.client.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    assert_denied(reader.client.get_object, Bucket=bucket, Key="secret")
    # The tags are read per request: tagging the object shares it at once.
    owner.client.put_object_tagging(
        Bucket=bucket, Key="secret", Tagging={"TagSet": [{"Key": "share", "Value": "yes"}]}
    )
    assert reader.client.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"x"
    # The owner's own delete is refused by the Deny on the protected tag, not elsewhere.
    assert_denied(owner.client.delete_object, Bucket=bucket, Key="kept")
    assert_ok(owner.client.delete_object, Bucket=bucket, Key="secret")
    assert owner.client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"k"


def test_request_object_tags_on_put_and_put_tagging(make_key: Callable[..., Key]) -> None:
    owner, writer = make_key("rtag-owner"), make_key("rtag-writer")
    bucket = owned_bucket(owner, "req-tag", {"doc": b"d"})
    objects = f"arn:aws:s3:::{bucket}/*"
    put_policy(
        owner.client,
        bucket,
        allow(
            {"AWS": writer.access_key},
            ["s3:PutObject", "s3:PutObjectTagging"],
            objects,
            Condition={
                "StringEquals": {"s3:RequestObjectTag/team": "blue"},
                "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["team", "cost"]},
            },
        ),
    )
    assert_ok(writer.client.put_object, Bucket=bucket, Key="a", Body=b"1", Tagging="team=blue")
    assert owner.client.get_object_tagging(Bucket=bucket, Key="a")["TagSet"] == [
        {"Key": "team", "Value": "blue"}
    ]
    assert_ok(
        writer.client.put_object, Bucket=bucket, Key="b", Body=b"2", Tagging="team=blue&cost=7"
    )
    assert_denied(writer.client.put_object, Bucket=bucket, Key="c", Body=b"3", Tagging="team=red")
    assert_denied(
        writer.client.put_object, Bucket=bucket, Key="c", Body=b"3", Tagging="team=blue&x=1"
    )
    assert_denied(writer.client.put_object, Bucket=bucket, Key="c", Body=b"3")
    assert_denied(writer.client.create_multipart_upload, Bucket=bucket, Key="c", Tagging="team=red")
    # PutObjectTagging: the tags come from the request body.
    blue = {"TagSet": [{"Key": "team", "Value": "blue"}]}
    red = {"TagSet": [{"Key": "team", "Value": "red"}]}
    assert_ok(writer.client.put_object_tagging, Bucket=bucket, Key="doc", Tagging=blue)
    assert_denied(writer.client.put_object_tagging, Bucket=bucket, Key="doc", Tagging=red)
    assert owner.client.get_object_tagging(Bucket=bucket, Key="doc")["TagSet"] == blue["TagSet"]
    with pytest.raises(ClientError):  # nothing written for the denied keys
        owner.client.head_object(Bucket=bucket, Key="c")


def test_listing_conditions_max_keys_delimiter_prefix(make_key: Callable[..., Key]) -> None:
    owner, lister = make_key("list-owner"), make_key("list-guest")
    bucket = owned_bucket(owner, "list-cond", {f"docs/{i}": b"x" for i in range(3)})
    put_policy(
        owner.client,
        bucket,
        allow(
            {"AWS": lister.access_key},
            "s3:ListBucket",
            f"arn:aws:s3:::{bucket}",
            Condition={
                "NumericLessThanEquals": {"s3:max-keys": "10"},
                "StringEquals": {"s3:delimiter": "/", "s3:prefix": "docs/"},
            },
        ),
    )
    ok = {"Bucket": bucket, "Prefix": "docs/", "Delimiter": "/"}
    listed = lister.client.list_objects_v2(**ok, MaxKeys=2)
    assert [c["Key"] for c in listed["Contents"]] == ["docs/0", "docs/1"]
    assert_ok(lister.client.list_objects, **ok, MaxKeys=10)
    assert_denied(lister.client.list_objects_v2, **ok, MaxKeys=11)
    assert_denied(lister.client.list_objects_v2, **ok)  # no max-keys: the key is absent
    assert_denied(lister.client.list_objects_v2, Bucket=bucket, Prefix="docs/", MaxKeys=2)
    assert_denied(lister.client.list_objects_v2, Bucket=bucket, Delimiter="/", MaxKeys=2)


def test_not_principal_deny_keeps_out_everyone_else(
    make_key: Callable[..., Key], node: NodeProcess
) -> None:
    owner, friend, stranger = make_key("np-owner"), make_key("np-friend"), make_key("np-other")
    bucket = owned_bucket(owner, "not-principal", {"k": b"v"})
    objects = f"arn:aws:s3:::{bucket}/*"
    put_policy(
        owner.client,
        bucket,
        allow("*", "s3:GetObject", objects),
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [owner.access_key, f"arn:aws:iam::0:user/{friend.access_key}"]},
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", objects],
        },
    )
    assert owner.client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert friend.client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert_denied(stranger.client.get_object, Bucket=bucket, Key="k")
    assert httpx.get(f"{node.url}/{bucket}/k").status_code == 403  # anonymous is not named


def test_if_exists_condition_on_a_header(make_key: Callable[..., Key]) -> None:
    owner, writer = make_key("ifx-owner"), make_key("ifx-writer")
    bucket = owned_bucket(owner, "if-exists", {"src": b"s"})
    put_policy(
        owner.client,
        bucket,
        allow(
            {"AWS": writer.access_key},
            ["s3:PutObject", "s3:GetObject"],
            f"arn:aws:s3:::{bucket}/*",
            Condition={
                "StringEqualsIfExists": {
                    "s3:x-amz-acl": "private",
                    "s3:x-amz-metadata-directive": "COPY",
                }
            },
        ),
    )
    assert_ok(writer.client.put_object, Bucket=bucket, Key="a", Body=b"1")  # no header at all
    assert_ok(writer.client.put_object, Bucket=bucket, Key="b", Body=b"1", ACL="private")
    assert_denied(writer.client.put_object, Bucket=bucket, Key="c", Body=b"1", ACL="public-read")
    source = {"Bucket": bucket, "Key": "src"}
    assert_ok(writer.client.copy_object, Bucket=bucket, Key="d", CopySource=source)
    assert_ok(
        writer.client.copy_object,
        Bucket=bucket,
        Key="e",
        CopySource=source,
        MetadataDirective="COPY",
    )
    assert_denied(
        writer.client.copy_object,
        Bucket=bucket,
        Key="f",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"m": "1"},
    )


def test_missing_key_for_anonymous_and_versions_is_403_without_list(
    root: Any, node: NodeProcess
) -> None:
    """AWS's rule for HEAD and GET, anonymous and by version id: 404 only with s3:ListBucket."""
    public = root_bucket(root, "public-probe", {"here": b"h"})
    root.put_bucket_versioning(Bucket=public, VersioningConfiguration={"Status": "Enabled"})
    version = root.put_object(Bucket=public, Key="here", Body=b"h2")["VersionId"]
    get_only = allow("*", "s3:GetObject*", f"arn:aws:s3:::{public}/*")
    put_policy(root, public, get_only)

    def statuses() -> list[int]:
        url = f"{node.url}/{public}"
        return [
            httpx.get(f"{url}/missing").status_code,
            httpx.head(f"{url}/missing").status_code,
            httpx.get(f"{url}/here", params={"versionId": "0" * 32}).status_code,
            httpx.head(f"{url}/here", params={"versionId": "0" * 32}).status_code,
            httpx.get(f"{url}/here", params={"versionId": version}).status_code,
        ]

    head = httpx.head(f"{node.url}/{public}/missing")
    assert head.content == b"" and head.headers.get("x-amz-error-code") == "AccessDenied"
    assert statuses() == [403, 403, 403, 403, 200]
    put_policy(root, public, get_only, allow("*", "s3:ListBucket", f"arn:aws:s3:::{public}"))
    wait_for(lambda: statuses()[0] == 404)
    assert statuses() == [404, 404, 404, 404, 200]


def test_missing_key_for_scoped_keys(
    root: Any, make_key: Callable[..., Key], tmp_path: Path
) -> None:
    """Key scopes decide like policies: a key that may list the bucket learns 404."""
    shared = root_bucket(root, "scoped-probe", {"here": b"h"})
    reader = make_key("scoped-ro", "--read-only", "--bucket", shared)  # reads and lists
    policy = tmp_path / "get-only.json"
    policy.write_text(
        json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{shared}/*",
                    }
                ]
            }
        )
    )
    getter = make_key("scoped-get", "--policy", str(policy))
    assert outcome(reader.client.get_object, Bucket=shared, Key="missing") == (404, "NoSuchKey")
    assert outcome(reader.client.head_object, Bucket=shared, Key="missing") == (404, "404")
    assert outcome(getter.client.get_object, Bucket=shared, Key="missing") == (403, "AccessDenied")
    assert outcome(getter.client.head_object, Bucket=shared, Key="missing") == (403, "403")
    assert getter.client.get_object(Bucket=shared, Key="here")["Body"].read() == b"h"


def test_version_id_and_copy_source_conditions(make_key: Callable[..., Key]) -> None:
    owner, guest = make_key("vid-owner"), make_key("vid-guest")
    bucket = owned_bucket(owner, "vid-cond")
    owner.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = owner.client.put_object(Bucket=bucket, Key="src/doc", Body=b"old")["VersionId"]
    owner.client.put_object(Bucket=bucket, Key="src/doc", Body=b"new")
    owner.client.put_object(Bucket=bucket, Key="other/doc", Body=b"o")
    objects = f"arn:aws:s3:::{bucket}/*"
    put_policy(
        owner.client,
        bucket,
        allow(
            {"AWS": guest.access_key},
            "s3:GetObjectVersion",
            objects,
            Condition={"StringEquals": {"s3:VersionId": old}},
        ),
        allow({"AWS": guest.access_key}, "s3:GetObject", objects),
        allow(
            {"AWS": guest.access_key},
            "s3:PutObject",
            f"arn:aws:s3:::{bucket}/copies/*",
            Condition={"StringLike": {"s3:x-amz-copy-source": [f"{bucket}/src/*"]}},
        ),
    )
    got = guest.client.get_object(Bucket=bucket, Key="src/doc", VersionId=old)
    assert got["Body"].read() == b"old"
    versions = owner.client.list_object_versions(Bucket=bucket, Prefix="src/")["Versions"]
    latest = next(v["VersionId"] for v in versions if v["IsLatest"])
    assert_denied(guest.client.get_object, Bucket=bucket, Key="src/doc", VersionId=latest)
    assert_ok(
        guest.client.copy_object,
        Bucket=bucket,
        Key="copies/a",
        CopySource={"Bucket": bucket, "Key": "src/doc"},
    )
    assert_denied(
        guest.client.copy_object,
        Bucket=bucket,
        Key="copies/b",
        CopySource={"Bucket": bucket, "Key": "other/doc"},
    )
    assert_denied(guest.client.put_object, Bucket=bucket, Key="copies/c", Body=b"no source")
