"""The console's Keys page over plain HTTP (node/console/keys.py): root key only, a secret
shown once, changes that apply to S3 at once, refusals shown as text, nothing secret logged."""

from __future__ import annotations

import re
import secrets
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.console.console_http import (
    PREFIX,
    assert_sent_to_sign_in,
    csrf_of,
    eventually,
    make_key,
    sign_in,
)
from tests.integration.nodeproc import ACCESS_KEY, REGION, NodeProcess

SECRET = re.compile(r'<code id="created-secret" class="secret">([^<]+)</code>')
ACCESS = re.compile(r'<code id="created-access-key">([^<]+)</code>')


def create(root: httpx.Client, **fields: str) -> tuple[str, str, httpx.Response]:
    """Create a key through the page; its access key, its secret and the page shown."""
    token = csrf_of(root, "keys")
    answer = root.post(PREFIX + "keys", data={"csrf": token, "action": "create", **fields})
    assert answer.status_code == 200, answer.text
    access, secret = ACCESS.search(answer.text), SECRET.search(answer.text)
    assert access is not None and secret is not None, answer.text
    return access.group(1), secret.group(1), answer


def act(root: httpx.Client, action: str, access_key: str, **fields: str) -> httpx.Response:
    token = csrf_of(root, "keys")
    data = {"csrf": token, "action": action, "access_key": access_key, **fields}
    return root.post(PREFIX + "keys", data=data)


def s3_as(node: NodeProcess, access: str, secret: str) -> Any:
    return boto3.client("s3", endpoint_url=node.url, aws_access_key_id=access,
                        aws_secret_access_key=secret, region_name=REGION)  # fmt: skip


def s3_code(node: NodeProcess, access: str, secret: str) -> str:
    """ListBuckets as the key: "ok" or S3's error code."""
    try:
        s3_as(node, access, secret).list_buckets()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"


def test_a_created_key_s_secret_is_shown_once_and_the_key_works(
    node: NodeProcess, root: httpx.Client
) -> None:
    name = f"page-{secrets.token_hex(4)}"
    access, secret, shown = create(root, access_key=name, buckets="alpha-one, beta-two gamma")
    assert access == name
    assert "will not be shown again" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    listed = root.get(PREFIX + "keys")
    assert name in listed.text and secret not in listed.text
    assert "alpha-one, beta-two, gamma" in listed.text
    detail = root.get(PREFIX + f"keys/{name}")
    assert detail.status_code == 200
    assert name in detail.text and secret not in detail.text
    assert s3_code(node, access, secret) == "ok"
    log = node.log_path.read_text()
    assert f"{PREFIX}keys" in log  # the create POST was logged ...
    assert secret not in log  # ... without the secret


def test_a_generated_key_and_its_limits(node: NodeProcess, root: httpx.Client) -> None:
    access, secret, _ = create(root, read_only="yes", replication="yes")
    assert access.startswith("LK") and len(secret) >= 30
    row = _row(root.get(PREFIX + "keys").text, access)
    assert '<td class="read-only">yes</td>' in row
    assert '<td class="replication">yes</td>' in row
    client = s3_as(node, access, secret)
    with pytest.raises(ClientError) as refused:
        client.create_bucket(Bucket=f"ro-{secrets.token_hex(4)}")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_disable_enable_and_delete_apply_to_s3_at_once(
    node: NodeProcess, root: httpx.Client
) -> None:
    access, secret, _ = create(root)
    assert s3_code(node, access, secret) == "ok"
    with sign_in(node, access, secret) as own:
        assert own.get(PREFIX).status_code == 200
        disabled = act(root, "disable", access, **{"from": "list"})
        assert disabled.status_code == 303
        assert disabled.headers["location"] == PREFIX + "keys"
        assert 'status-disabled">disabled' in _row(root.get(PREFIX + "keys").text, access)
        eventually(lambda: s3_code(node, access, secret) == "AccessDenied", "refused by S3")
        # Its console session ends at its next request.
        assert_sent_to_sign_in(own.get(PREFIX))
    enabled = act(root, "enable", access, **{"from": "detail"})
    assert enabled.status_code == 303
    assert enabled.headers["location"] == PREFIX + f"keys/{access}"
    eventually(lambda: s3_code(node, access, secret) == "ok", "accepted again")
    unconfirmed = act(root, "delete", access)
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    assert s3_code(node, access, secret) == "ok"
    deleted = act(root, "delete", access, confirm="yes")
    assert deleted.status_code == 303
    assert access not in root.get(PREFIX + "keys").text
    assert root.get(PREFIX + f"keys/{access}").status_code == 404
    eventually(lambda: s3_code(node, access, secret) == "InvalidAccessKeyId", "unknown to S3")


def test_policies_are_checked_and_edited(node: NodeProcess, root: httpx.Client) -> None:
    bad = '{"Statement": [{"Effect": "Allow", "Action": "s3:*",'
    token = csrf_of(root, "keys")
    name = f"pol-{secrets.token_hex(4)}"
    data = {"csrf": token, "action": "create", "access_key": name, "policy": bad}
    refused = root.post(PREFIX + "keys", data=data)
    assert refused.status_code == 400
    assert "policy is not valid" in refused.text and "JSON" in refused.text
    assert "&#34;Statement&#34;: [{&#34;Effect&#34;" in refused.text  # the text kept, escaped
    assert f'value="{name}"' in refused.text
    assert name not in _names(root.get(PREFIX + "keys").text)
    access, secret, _ = create(root, access_key=name)
    deny_list = (
        '{"Version": "2012-10-17", "Statement": ['
        '{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},'
        '{"Effect": "Deny", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}'
    )
    edited = act(root, "policy", access, policy=deny_list)
    assert edited.status_code == 303
    assert "ListAllMyBuckets" in root.get(PREFIX + f"keys/{access}").text
    eventually(lambda: s3_code(node, access, secret) == "AccessDenied", "the policy applied")
    wrong = act(root, "policy", access, policy='{"Statement": []}')
    assert wrong.status_code == 400 and "policy is not valid" in wrong.text
    assert "&#34;Statement&#34;: []" in wrong.text  # the refused text stays in the editor
    removed = act(root, "policy", access, policy="  ")
    assert removed.status_code == 303
    eventually(lambda: s3_code(node, access, secret) == "ok", "the policy removed")


def test_bad_requests_are_shown_as_text(root: httpx.Client) -> None:
    token = csrf_of(root, "keys")
    hostile = "<img src=x onerror=alert(1)>"
    for data, status in (
        ({"action": "create", "access_key": hostile}, 400),
        ({"action": "create", "access_key": ACCESS_KEY}, 409),
        ({"action": "disable", "access_key": hostile}, 404),
        ({"action": "explode", "access_key": "x"}, 400),
    ):
        answer = root.post(PREFIX + "keys", data={"csrf": token, **data})
        assert answer.status_code == status, (data, answer.text)
        assert "<img src=x" not in answer.text
    name = f"dup-{secrets.token_hex(4)}"
    create(root, access_key=name)
    again = root.post(PREFIX + "keys", data={"csrf": token, "action": "create", "access_key": name})
    assert again.status_code == 400 and "already exists" in again.text
    missing = root.get(PREFIX + "keys/" + "no-such-key")
    assert missing.status_code == 404


def test_only_the_root_key_may_use_the_page(node: NodeProcess, root: httpx.Client) -> None:
    victim, _, _ = create(root)
    access, secret = make_key(node)  # a full key, not read-only: still not root
    with sign_in(node, access, secret) as other:
        assert other.get(PREFIX + "keys").status_code == 403
        assert other.get(PREFIX + f"keys/{victim}").status_code == 403
        assert f'href="{PREFIX}keys"' not in other.get(PREFIX).text  # no nav link
        token = csrf_of(other)  # its own, valid token
        for data in (
            {"action": "create", "access_key": f"forged-{secrets.token_hex(4)}"},
            {"action": "disable", "access_key": victim},
            {"action": "delete", "access_key": victim, "confirm": "yes"},
        ):
            forged = other.post(PREFIX + "keys", data={"csrf": token, **data})
            assert forged.status_code == 403, data
            assert "root key" in forged.text
    assert 'status-active">active' in _row(root.get(PREFIX + "keys").text, victim)
    assert "forged-" not in root.get(PREFIX + "keys").text


def test_key_changes_need_the_csrf_token(root: httpx.Client) -> None:
    victim, _, _ = create(root)
    for token in (None, "0" * 64):
        data = {"action": "disable", "access_key": victim} | ({"csrf": token} if token else {})
        assert root.post(PREFIX + "keys", data=data).status_code == 403
    foreign = root.post(
        PREFIX + "keys",
        headers={"origin": "https://evil.example"},
        data={"csrf": csrf_of(root, "keys"), "action": "disable", "access_key": victim},
    )
    assert foreign.status_code == 403
    assert 'status-active">active' in _row(root.get(PREFIX + "keys").text, victim)


def _names(page: str) -> list[str]:
    return re.findall(r'<tr class="key" data-access-key="([^"]+)"', page)


def _row(page: str, access_key: str) -> str:
    start = page.index(f'<tr class="key" data-access-key="{access_key}"')
    return page[start : page.index("</tr>", start)]
