"""The one S3 error type and its rendering as an S3 XML error document.

Every failure a client can see is an :class:`S3Error`. Its HTTP status comes from
:data:`STATUS_BY_CODE`, so a code and its status can never drift apart. Storage errors are
translated to S3 codes in exactly one place, :func:`from_storage_error`; anything else that
escapes a handler becomes ``InternalError`` (500) with the traceback logged, never sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape

from storage import errors as storage_errors

# AWS's status for each error code we emit. Adding a code here is the only way to use it.
STATUS_BY_CODE: dict[str, int] = {
    "AccessControlListNotSupported": 400,
    "AccessDenied": 403,
    "AccessForbidden": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BadRequest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "ConditionalRequestConflict": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IllegalLocationConstraintException": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketAclWithObjectOwnership": 400,
    "InvalidBucketName": 400,
    "InvalidBucketState": 409,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartNumber": 416,
    "InvalidPolicyDocument": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidStorageClass": 400,
    "InvalidTag": 400,
    "KeyTooLongError": 400,
    "MalformedACLError": 400,
    "MalformedPOSTRequest": 400,
    "MalformedPolicy": 400,
    "MalformedXML": 400,
    "MaxPostPreDataLengthExceededError": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchCORSConfiguration": 404,
    "NoSuchKey": 404,
    "NoSuchLifecycleConfiguration": 404,
    "NoSuchObjectLockConfiguration": 404,
    "NoSuchPublicAccessBlockConfiguration": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "NotModified": 304,
    "ObjectLockConfigurationNotFoundError": 404,
    "OwnershipControlsNotFoundError": 404,
    "PolicyTooLarge": 400,
    "PreconditionFailed": 412,
    "RequestHeaderSectionTooLarge": 400,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "UnexpectedContent": 400,
    "UnresolvableGrantByEmailAddress": 400,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An error reported to the client as an S3 XML error document."""

    def __init__(
        self,
        code: str,
        message: str = "",
        resource: str = "",
        headers: dict[str, str] | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        assert code in STATUS_BY_CODE, f"unknown S3 error code {code!r}"
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message or code
        self.resource = resource
        self.headers = headers or {}
        # Extra elements AWS puts in some error documents (StringToSign, HeadersNotSigned...).
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]


# Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    """Escaped for XML; characters XML cannot carry (e.g. from a key) are percent-encoded."""
    cleaned = _NOT_XML_CHARS.sub(lambda m: quote(m.group(), safe="", errors="surrogatepass"), text)
    return escape(cleaned)


def render_error_xml(
    code: str,
    message: str,
    resource: str,
    request_id: str,
    details: Mapping[str, str] | None = None,
) -> bytes:
    """The error document; ``details`` are extra elements (names are ours, never a client's)."""
    extra = "".join(
        f"<{name}>{_xml_text(value)}</{name}>" for name, value in (details or {}).items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_xml_text(code)}</Code><Message>{_xml_text(message)}</Message>{extra}"
        f"<Resource>{_xml_text(resource)}</Resource>"
        f"<RequestId>{_xml_text(request_id)}</RequestId></Error>"
    ).encode()


_AWS_MESSAGES = {
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
    "BucketAlreadyOwnedByYou": (
        "Your previous request to create the named bucket succeeded and you already own it."
    ),
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed size",
    "SlowDown": "Please reduce your request rate.",
    "NoSuchVersion": "The specified version does not exist.",
    "NoSuchUpload": (
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed."
    ),
    "InvalidPart": (
        "One or more of the specified parts could not be found. The part might not have been "
        "uploaded, or the specified entity tag might not have matched the part's entity tag."
    ),
    "InvalidPartOrder": "The list of parts was not in ascending order. The parts list must be "
    "specified in order by part number.",
    "EntityTooSmall": "Your proposed upload is smaller than the minimum allowed object size.",
    "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
    "AccessDenied": "Access Denied because object protected by object lock.",
    "InvalidRequest": "Bucket is missing Object Lock Configuration",
    "MethodNotAllowed": "The specified method is not allowed against this resource.",
    "ConditionalRequestConflict": (
        "The conditional request cannot succeed due to a conflicting operation against this "
        "resource."
    ),
}

_CODE_BY_STORAGE_ERROR: dict[type[storage_errors.StorageError], str] = {
    storage_errors.NoSuchBucket: "NoSuchBucket",
    storage_errors.NoSuchKey: "NoSuchKey",
    storage_errors.BucketNotEmpty: "BucketNotEmpty",
    storage_errors.BucketAlreadyExists: "BucketAlreadyOwnedByYou",
    storage_errors.EntityTooLarge: "EntityTooLarge",
    storage_errors.ReadOnly: "SlowDown",
    storage_errors.NoSuchVersion: "NoSuchVersion",
    storage_errors.NoSuchUpload: "NoSuchUpload",
    storage_errors.InvalidPart: "InvalidPart",
    storage_errors.InvalidPartOrder: "InvalidPartOrder",
    storage_errors.EntityTooSmall: "EntityTooSmall",
    storage_errors.PreconditionFailed: "PreconditionFailed",
    storage_errors.ConditionalConflict: "ConditionalRequestConflict",
    storage_errors.BadDigest: "BadDigest",
    storage_errors.ObjectLocked: "AccessDenied",
    storage_errors.InvalidBucketState: "InvalidBucketState",
    storage_errors.LockNotEnabled: "InvalidRequest",
    storage_errors.LockOnDeleteMarker: "MethodNotAllowed",
}


def from_storage_error(error: storage_errors.StorageError, resource: str = "") -> S3Error:
    """Translate a storage error; corruption and unknown storage errors become InternalError."""
    for error_type in type(error).__mro__:
        code = _CODE_BY_STORAGE_ERROR.get(error_type)
        if code is not None:
            return S3Error(code, _AWS_MESSAGES.get(code, str(error)), resource)
    return S3Error("InternalError", "We encountered an internal error. Please try again.", resource)
