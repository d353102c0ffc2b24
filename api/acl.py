"""The AWS access control list model: grants, canned ACLs, ``x-amz-grant-*`` headers, the
AccessControlPolicy document, and what each permission allows. Pure: no I/O.

An ACL is stored as compact JSON (:meth:`Acl.to_json`): as a bucket document (``acl``), in
an object version's manifest headers (:data:`ACL_HEADER`, the ACL it was written with) or in
storage's ``object_acls`` table (an ACL set later with PutObjectAcl). Grantees are canonical
user ids (``api.settings.owner_id`` of an access key) and the AllUsers, AuthenticatedUsers
and LogDelivery groups. A resource without a stored ACL has AWS's default: its owner holds
FULL_CONTROL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from api import xml
from api.errors import S3Error

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})
PUBLIC_GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS})
CANONICAL_USER = "CanonicalUser"
GROUP = "Group"
PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
# The manifest header holding the ACL an object version was written with (never shown).
ACL_HEADER = "x-lakenode-acl"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NAMESPACE}}}type"

# The request headers that carry explicit grants, and the permission each grants.
GRANT_HEADERS = {
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
    "x-amz-grant-full-control": "FULL_CONTROL",
}
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)

# What a permission allows (IAM actions, lower case), on a bucket and on an object. WRITE on
# an object means nothing on AWS; FULL_CONTROL is every permission.
_BUCKET_ACTIONS = {
    "READ": frozenset({"s3:listbucket", "s3:listbucketversions", "s3:listbucketmultipartuploads"}),
    "WRITE": frozenset(
        {
            "s3:putobject",
            "s3:deleteobject",
            "s3:deleteobjectversion",
            "s3:deleteobjects",
            "s3:abortmultipartupload",
        }
    ),
    "READ_ACP": frozenset({"s3:getbucketacl"}),
    "WRITE_ACP": frozenset({"s3:putbucketacl"}),
}
_OBJECT_ACTIONS = {
    "READ": frozenset({"s3:getobject", "s3:getobjectversion"}),
    "READ_ACP": frozenset({"s3:getobjectacl", "s3:getobjectversionacl"}),
    "WRITE_ACP": frozenset({"s3:putobjectacl", "s3:putobjectversionacl"}),
}
BUCKET_ACL_ACTIONS = frozenset().union(*_BUCKET_ACTIONS.values())
OBJECT_ACL_ACTIONS = frozenset().union(*_OBJECT_ACTIONS.values())


@dataclass(frozen=True)
class Grant:
    grantee_type: str  # CANONICAL_USER or GROUP
    grantee: str  # a canonical user id or a group URI
    permission: str


@dataclass(frozen=True)
class Acl:
    owner: str  # the owner's canonical user id
    grants: tuple[Grant, ...]

    def to_json(self) -> str:
        grants = [[g.grantee_type, g.grantee, g.permission] for g in self.grants]
        return json.dumps({"owner": self.owner, "grants": grants}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Acl:
        document = json.loads(text)
        grants = tuple(Grant(str(t), str(g), str(p)) for t, g, p in document["grants"])
        return cls(str(document["owner"]), grants)

    @property
    def is_public(self) -> bool:
        """Grants something to everyone or to every authenticated user (AWS's "public")."""
        return any(g.grantee in PUBLIC_GROUPS for g in self.grants)


def private(owner: str) -> Acl:
    """AWS's default ACL: the owner holds FULL_CONTROL."""
    return Acl(owner, (Grant(CANONICAL_USER, owner, "FULL_CONTROL"),))


def permits(
    acl: Acl, action: str, on_object: bool, principals: frozenset[str], ignore_public: bool
) -> bool:
    """Whether a grant to one of ``principals`` (canonical ids, group URIs) allows ``action``
    (lower case) on the bucket or object the ACL belongs to."""
    table = _OBJECT_ACTIONS if on_object else _BUCKET_ACTIONS
    for grant in acl.grants:
        if grant.grantee not in principals or (ignore_public and grant.grantee in PUBLIC_GROUPS):
            continue
        if grant.permission == "FULL_CONTROL":
            if any(action in actions for actions in table.values()):
                return True
        elif action in table.get(grant.permission, ()):
            return True
    return False


# ---- canned ACLs and grant headers ------------------------------------------------------------


def canned(name: str, owner: str, bucket_owner: str, on_object: bool) -> Acl:
    """A canned ACL as AWS expands it (bucket-owner-* mean private on a bucket, and
    aws-exec-read grants nothing more here: lakenode has no EC2 to read for)."""
    if name not in CANNED_ACLS:
        raise S3Error("InvalidArgument", f"Invalid canned ACL {name!r}.")
    grants = list(private(owner).grants)
    extra = {
        "public-read": [(GROUP, ALL_USERS, "READ")],
        "public-read-write": [(GROUP, ALL_USERS, "READ"), (GROUP, ALL_USERS, "WRITE")],
        "authenticated-read": [(GROUP, AUTHENTICATED_USERS, "READ")],
        "log-delivery-write": [(GROUP, LOG_DELIVERY, "WRITE"), (GROUP, LOG_DELIVERY, "READ_ACP")],
    }.get(name, [])
    if on_object and bucket_owner != owner:
        if name == "bucket-owner-read":
            extra = [(CANONICAL_USER, bucket_owner, "READ")]
        elif name == "bucket-owner-full-control":
            extra = [(CANONICAL_USER, bucket_owner, "FULL_CONTROL")]
    grants += [Grant(*grant) for grant in extra]
    return Acl(owner, tuple(grants))


_GRANTEE = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


def parse_grant_header(value: str, permission: str) -> list[Grant]:
    """``id="...", uri="...", emailAddress="..."`` (comma separated) -> grants."""
    grants: list[Grant] = []
    position = 0
    while position < len(value):
        match = _GRANTEE.match(value, position)
        if match is None or match.end() == position:
            raise S3Error("InvalidArgument", f"Invalid grant header value: {value!r}")
        kind, grantee = match.group(1).lower(), match.group(2)
        if kind == "id":
            grants.append(Grant(CANONICAL_USER, grantee, permission))
        elif kind == "uri":
            grants.append(Grant(GROUP, grantee, permission))
        elif kind == "emailaddress":
            raise _unresolvable_email()
        else:
            raise S3Error("InvalidArgument", f"Invalid grantee type {match.group(1)!r}.")
        position = match.end()
    if not grants:
        raise S3Error("InvalidArgument", f"Invalid grant header value: {value!r}")
    return grants


def header_grants(headers: Mapping[str, str]) -> list[Grant] | None:
    """The grants of the request's x-amz-grant-* headers; None when there is none."""
    present = [(name, headers[name]) for name in GRANT_HEADERS if name in headers]
    if not present:
        return None
    return [g for name, value in present for g in parse_grant_header(value, GRANT_HEADERS[name])]


def _unresolvable_email() -> S3Error:
    return S3Error(
        "UnresolvableGrantByEmailAddress",
        "The e-mail address you provided does not match any account on record.",
    )


UNKNOWN_GRANTEE_MESSAGE = "Invalid id"


def is_unknown_grantee(exc: S3Error) -> bool:
    """Whether ``exc`` is :func:`check_grantees` refusing a canonical id it does not know."""
    return exc.code == "InvalidArgument" and exc.message == UNKNOWN_GRANTEE_MESSAGE


def check_grantees(grants: Iterable[Grant], known_user: Callable[[str], bool]) -> None:
    """Every grantee must be a known canonical user or group (InvalidArgument otherwise)."""
    for grant in grants:
        if grant.grantee_type == GROUP and grant.grantee not in GROUPS:
            raise S3Error("InvalidArgument", f"Invalid group uri {grant.grantee!r}.")
        if grant.grantee_type == CANONICAL_USER and not known_user(grant.grantee):
            raise S3Error("InvalidArgument", UNKNOWN_GRANTEE_MESSAGE)
        if grant.permission not in PERMISSIONS:
            raise malformed_acl()


# ---- the AccessControlPolicy document -----------------------------------------------------


def malformed_acl() -> S3Error:
    return S3Error(
        "MalformedACLError",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


def parse_acl_xml(body: bytes) -> Acl:
    """An AccessControlPolicy body -> Acl. Not XML: MalformedXML; XML that is not a valid
    ACL (no Owner/ID, a grant without grantee or with an unknown permission): MalformedACLError.
    """
    root = xml.parse(body)
    owners = xml.children_named(root, "Owner")
    lists = xml.children_named(root, "AccessControlList")
    if xml.local_name(root) != "AccessControlPolicy" or len(owners) != 1 or len(lists) > 1:
        raise malformed_acl()
    owner = xml.child_text(owners[0], "ID")
    if not owner:
        raise malformed_acl()
    grants: list[Grant] = []
    for element in lists[0] if lists else ():
        if xml.local_name(element) != "Grant":
            raise malformed_acl()
        grants.append(_parse_grant(element))
    return Acl(owner, tuple(grants))


def _parse_grant(element: Element) -> Grant:
    grantees = xml.children_named(element, "Grantee")
    permission = xml.child_text(element, "Permission")
    if len(grantees) != 1 or permission not in PERMISSIONS:
        raise malformed_acl()
    grantee = grantees[0]
    declared = grantee.get(_XSI_TYPE)
    user_id, uri = xml.child_text(grantee, "ID"), xml.child_text(grantee, "URI")
    email = xml.child_text(grantee, "EmailAddress")
    if declared == "AmazonCustomerByEmail" or (declared is None and email is not None):
        if not email:
            raise malformed_acl()
        raise _unresolvable_email()
    if declared in (CANONICAL_USER, None) and user_id:
        return Grant(CANONICAL_USER, user_id, permission)
    if declared in (GROUP, None) and uri:
        return Grant(GROUP, uri, permission)
    raise malformed_acl()


def render_acl(acl: Acl, display_name: Callable[[str], str | None]) -> bytes:
    """The AccessControlPolicy document GetBucketAcl/GetObjectAcl answer."""
    owner_name = display_name(acl.owner)
    owner: list[xml.Node] = [("ID", acl.owner), ("DisplayName", owner_name)]
    grants: list[xml.Node] = []
    for grant in acl.grants:
        if grant.grantee_type == GROUP:
            who: list[xml.Node] = [("URI", grant.grantee)]
        else:
            who = [("ID", grant.grantee), ("DisplayName", display_name(grant.grantee))]
        grantee: xml.Node = (f"Grantee {grant.grantee_type}", who)
        grants.append(("Grant", [grantee, ("Permission", grant.permission)]))
    body = xml.render("AccessControlPolicy", [("Owner", owner), ("AccessControlList", grants)])
    # The xsi:type attribute the SDKs read to tell users from groups.
    for kind in (CANONICAL_USER, GROUP):
        body = body.replace(
            f"<Grantee {kind}>".encode(),
            f'<Grantee xmlns:xsi="{XSI_NAMESPACE}" xsi:type="{kind}">'.encode(),
        ).replace(f"</Grantee {kind}>".encode(), b"</Grantee>")
    return body
