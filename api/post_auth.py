"""Who signed a POST form: the signature fields of a browser upload, verified (pure).

A browser upload is an unsigned HTTP request; its authority is the form's ``policy`` field,
signed by a key holder:

* Signature Version 4: ``x-amz-algorithm`` (AWS4-HMAC-SHA256), ``x-amz-credential``
  (``AKID/YYYYMMDD/region/s3/aws4_request``), ``x-amz-date`` and ``x-amz-signature``, the
  hex HMAC-SHA256 of the base64 policy under the SigV4 signing key of that scope;
* Signature Version 2 (boto3's ``generate_presigned_post`` default): ``AWSAccessKeyId`` and
  ``signature``, the base64 HMAC-SHA1 of the base64 policy under the secret key itself.

A form with neither acts as the anonymous user (only a bucket open to uploads admits it).
Errors are AWS's: a missing companion field is InvalidArgument ("Bucket POST must contain a
field named ..."), a malformed credential AuthorizationQueryParametersError, an unknown key
InvalidAccessKeyId, a wrong signature SignatureDoesNotMatch, and a policy nobody signed
AccessDenied. Unlike a request signature there is no clock-skew check: the policy's own
expiration bounds the form's life.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping

from api import sigv2
from api.errors import S3Error
from api.sigv4 import (
    parse_amz_date,  # the same rules as presigned URLs: one implementation
    parse_credential,
    signatures_equal,
)
from api.sigv4_canonical import ALGORITHM, signature, signing_key

# Field names (lower case) and the spelling AWS uses for them in its error messages.
V4_FIELDS = {
    "x-amz-signature": "X-Amz-Signature",
    "x-amz-algorithm": "X-Amz-Algorithm",
    "x-amz-credential": "X-Amz-Credential",
    "x-amz-date": "X-Amz-Date",
}
V2_FIELDS = {"awsaccesskeyid": "AWSAccessKeyId", "signature": "Signature"}
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def missing_field(name: str) -> S3Error:
    return S3Error(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check "
        "the order of the fields.",
    )


def _query_error(detail: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", detail)


def form_signer(
    fields: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    region: str,
    sigv2_enabled: bool = True,
) -> str | None:
    """The access key whose signature the form's policy carries; None for an unsigned form.

    ``fields`` are the form's fields before the file, names in lower case. A SigV2 form on a
    node started with ``--sigv2 off`` is refused like any other SigV2 request.
    """
    signed_v4 = any(name in fields for name in V4_FIELDS)
    signed_v2 = any(name in fields for name in V2_FIELDS)
    if not signed_v4 and not signed_v2:
        if "policy" in fields:  # a policy nobody signed grants nothing
            raise S3Error("AccessDenied", "Access Denied")
        return None
    if "policy" not in fields:
        raise missing_field("policy")
    required = V4_FIELDS if signed_v4 else V2_FIELDS
    for name, spelling in required.items():
        if name not in fields:
            raise missing_field(spelling)
    if signed_v4:
        return _verify_v4(fields, secret_for, region)
    if not sigv2_enabled:
        raise sigv2.disabled()
    return _verify_v2(fields, secret_for)


def _secret(access_key: str, secret_for: Callable[[str], str | None]) -> str:
    secret = secret_for(access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    return secret


def _verify_v4(
    fields: Mapping[str, str], secret_for: Callable[[str], str | None], region: str
) -> str:
    if fields["x-amz-algorithm"] != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    credential = parse_credential(
        fields["x-amz-credential"],
        region,
        lambda detail: _query_error(f"Error parsing the X-Amz-Credential parameter; {detail}"),
    )
    amz_date = fields["x-amz-date"]
    if parse_amz_date(amz_date) is None:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if credential.date != amz_date[:8]:
        raise _query_error(
            "Error parsing the X-Amz-Credential parameter; Invalid credential date. "
            "Date is not the same as X-Amz-Date."
        )
    secret = _secret(credential.access_key, secret_for)
    key = signing_key(secret, credential.date, credential.region, credential.service)
    if not signatures_equal(signature(key, fields["policy"]), fields["x-amz-signature"]):
        raise S3Error("SignatureDoesNotMatch", _MISMATCH)
    return credential.access_key


def _verify_v2(fields: Mapping[str, str], secret_for: Callable[[str], str | None]) -> str:
    access_key = fields["awsaccesskeyid"]
    secret = _secret(access_key, secret_for)
    digest = hmac.new(secret.encode(), fields["policy"].encode(), hashlib.sha1).digest()
    if not signatures_equal(base64.b64encode(digest).decode("ascii"), fields["signature"]):
        raise S3Error("SignatureDoesNotMatch", _MISMATCH)
    return access_key
