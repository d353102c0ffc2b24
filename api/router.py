"""Routing: (method, host, path, query, headers) -> which S3 operation, on what.

Pure functions, no I/O: FastAPI's decorators cannot tell ``?uploads`` from ``?list-type=2``,
so the one catch-all route calls :func:`resolve` and dispatches on the operation name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api.errors import S3Error

PREFLIGHT = "PreflightCors"  # OPTIONS on a bucket or object: answered before authentication

# Bucket sub-resources we know but do not serve yet: answered NotImplemented (501), never
# mistaken for a listing or a create.
_BUCKET_SUBRESOURCES = frozenset(
    (
        "accelerate",
        "analytics",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "logging",
        "metrics",
        "notification",
        "replication",
        "requestPayment",
        "website",
    )
)
_OBJECT_SUBRESOURCES = frozenset(
    (
        "restore",
        "select",
        "tagging",
        "torrent",
    )
)


# (sub-resource, method) -> operation, for bucket and object configuration sub-resources.
BUCKET_SUBRESOURCE_OPERATIONS = {
    ("policy", "GET"): "GetBucketPolicy",
    ("policy", "PUT"): "PutBucketPolicy",
    ("policy", "DELETE"): "DeleteBucketPolicy",
    ("acl", "GET"): "GetBucketAcl",
    ("acl", "PUT"): "PutBucketAcl",
    ("tagging", "GET"): "GetBucketTagging",
    ("tagging", "PUT"): "PutBucketTagging",
    ("tagging", "DELETE"): "DeleteBucketTagging",
    ("cors", "GET"): "GetBucketCors",
    ("cors", "PUT"): "PutBucketCors",
    ("cors", "DELETE"): "DeleteBucketCors",
    ("ownershipControls", "GET"): "GetBucketOwnershipControls",
    ("ownershipControls", "PUT"): "PutBucketOwnershipControls",
    ("ownershipControls", "DELETE"): "DeleteBucketOwnershipControls",
    ("publicAccessBlock", "GET"): "GetPublicAccessBlock",
    ("publicAccessBlock", "PUT"): "PutPublicAccessBlock",
    ("publicAccessBlock", "DELETE"): "DeletePublicAccessBlock",
    ("policyStatus", "GET"): "GetBucketPolicyStatus",
    ("lifecycle", "GET"): "GetBucketLifecycleConfiguration",
    ("lifecycle", "PUT"): "PutBucketLifecycleConfiguration",
    ("lifecycle", "DELETE"): "DeleteBucketLifecycle",
    ("object-lock", "GET"): "GetObjectLockConfiguration",
    ("object-lock", "PUT"): "PutObjectLockConfiguration",
}
OBJECT_SUBRESOURCE_OPERATIONS = {
    ("acl", "GET"): "GetObjectAcl",
    ("acl", "PUT"): "PutObjectAcl",
    ("tagging", "GET"): "GetObjectTagging",
    ("tagging", "PUT"): "PutObjectTagging",
    ("tagging", "DELETE"): "DeleteObjectTagging",
    ("attributes", "GET"): "GetObjectAttributes",
    ("retention", "GET"): "GetObjectRetention",
    ("retention", "PUT"): "PutObjectRetention",
    ("legal-hold", "GET"): "GetObjectLegalHold",
    ("legal-hold", "PUT"): "PutObjectLegalHold",
}


def _subresource_operation(
    method: str, query: Mapping[str, str], table: Mapping[tuple[str, str], str]
) -> str | None:
    names = {name for name, _method in table}
    for name in query:
        if name in names:
            operation = table.get((name, method))
            if operation is None:
                raise S3Error(
                    "MethodNotAllowed", "The specified method is not allowed against this resource."
                )
            return operation
    return None


@dataclass(frozen=True)
class Target:
    bucket: str | None
    key: str | None


def virtual_host_bucket(host: str, domain: str | None) -> str | None:
    """The bucket a virtual-hosted Host names (``BUCKET.DOMAIN[:port]``), else None."""
    hostname = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
    if domain and hostname.endswith("." + domain):
        return hostname[: -len(domain) - 1]
    return None


def split_target(path: str, host: str, domain: str | None) -> Target:
    """Bucket and key from a virtual-hosted Host (under ``domain``) or a path-style path."""
    bucket = virtual_host_bucket(host, domain)
    if bucket is not None:
        key = path[1:] if path.startswith("/") else path
        return Target(bucket, key or None)
    stripped = path[1:] if path.startswith("/") else path
    if not stripped:
        return Target(None, None)
    bucket, _, key = stripped.partition("/")
    return Target(bucket, key or None)


def resolve(method: str, target: Target, query: Mapping[str, str], has_copy_source: bool) -> str:
    """The S3 operation name for a request, or raise NotImplemented/MethodNotAllowed."""
    if target.bucket is None:
        if method in ("GET", "HEAD"):
            return "ListBuckets"
        raise S3Error("MethodNotAllowed", "The specified method is not allowed.")
    if method == "OPTIONS":
        return PREFLIGHT  # CORS preflight, on a bucket or an object
    if target.key is None:
        return _resolve_bucket(method, query)
    return _resolve_object(method, query, has_copy_source)


def _unsupported(query: Mapping[str, str], known: frozenset[str]) -> str | None:
    for name in query:
        if name in known:
            return name
    return None


def _resolve_bucket(method: str, query: Mapping[str, str]) -> str:
    configured = _subresource_operation(method, query, BUCKET_SUBRESOURCE_OPERATIONS)
    if configured is not None:
        return configured
    if method == "GET":
        for name, operation in (
            ("location", "GetBucketLocation"),
            ("versioning", "GetBucketVersioning"),
            ("versions", "ListObjectVersions"),
            ("uploads", "ListMultipartUploads"),
        ):
            if name in query:
                return operation
        _refuse(_unsupported(query, _BUCKET_SUBRESOURCES), "bucket")
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "PUT" and "versioning" in query:
        return "PutBucketVersioning"
    served = {"delete", "location", "versioning", "versions", "uploads"}
    _refuse(_unsupported(query, _BUCKET_SUBRESOURCES | served), "bucket")
    by_method = {
        "PUT": "CreateBucket",
        "DELETE": "DeleteBucket",
        "HEAD": "HeadBucket",
        "POST": "PostObject",  # a browser upload: multipart/form-data
    }
    if method in by_method:
        return by_method[method]
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")


def _resolve_object(method: str, query: Mapping[str, str], has_copy_source: bool) -> str:
    configured = _subresource_operation(method, query, OBJECT_SUBRESOURCE_OPERATIONS)
    if configured is not None:
        return configured
    _refuse(_unsupported(query, _OBJECT_SUBRESOURCES), "object")
    if "uploadId" in query:
        return _resolve_upload(method, query, has_copy_source)
    if method == "PUT":
        return "CopyObject" if has_copy_source else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        # POST Object goes to the bucket's URL, the key in the form: as on S3, 405 here.
        raise S3Error(
            "MethodNotAllowed", "The specified method is not allowed against this resource."
        )
    by_method = {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    if method in by_method:
        return by_method[method]
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")


def _resolve_upload(method: str, query: Mapping[str, str], has_copy_source: bool) -> str:
    if method == "PUT" and "partNumber" in query:
        return "UploadPartCopy" if has_copy_source else "UploadPart"
    by_method = {
        "POST": "CompleteMultipartUpload",
        "DELETE": "AbortMultipartUpload",
        "GET": "ListParts",
    }
    if method in by_method:
        return by_method[method]
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")


def _refuse(feature: str | None, level: str) -> None:
    if feature is not None:
        raise S3Error(
            "NotImplemented",
            f"A header or query you provided implies functionality that is not implemented "
            f"({level} {feature}).",
        )
