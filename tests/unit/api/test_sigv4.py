"""SigV4: the published AWS test suite, S3's documented examples, round trips, every error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from api import sigv4, sigv4_canonical, sigv4_signing
from api.errors import S3Error
from api.sigv4 import SignableRequest

# --------------------------------------------------------------------------------------
# The AWS SigV4 test suite (service "service", 2015 edition). Expected values are copied
# from the suite's .creq/.sts/.authz files; requests are given as sent on the wire.
# --------------------------------------------------------------------------------------

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"
SUITE_SCOPE = "20150830/us-east-1/service/aws4_request"
SUITE_HOST = "example.amazonaws.com"
STS_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxf"
    "pSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPk"
    "yQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqB"
    "Az+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
FORM_BODY_SHA256 = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# (name, method, decoded path, raw query, extra headers, payload hash, sts digest, signature)
SUITE: list[tuple[str, str, str, str, dict[str, str], str, str, str]] = [
    (
        "get-vanilla",
        "GET", "/", "", {}, sigv4_canonical.EMPTY_SHA256,
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET", "/", "Param2=value2&Param1=value1", {}, sigv4_canonical.EMPTY_SHA256,
        "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-query-order-key",
        "GET", "/", "Param1=value2&Param1=Value1", {}, sigv4_canonical.EMPTY_SHA256,
        "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    (
        "get-vanilla-query-order-value",
        "GET", "/", "Param1=value2&Param1=value1", {}, sigv4_canonical.EMPTY_SHA256,
        "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    ),
    (
        "get-vanilla-query-unreserved",
        "GET", "/", f"{UNRESERVED}={UNRESERVED}", {}, sigv4_canonical.EMPTY_SHA256,
        "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
        "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    ),
    (
        "get-vanilla-utf8-query",
        "GET", "/", "\u1234=bar", {}, sigv4_canonical.EMPTY_SHA256,
        "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-unreserved",
        "GET", f"/{UNRESERVED}", "", {}, sigv4_canonical.EMPTY_SHA256,
        "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-utf8",
        "GET", "/\u1234", "", {}, sigv4_canonical.EMPTY_SHA256,
        "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    ),
    (
        "get-space",
        "GET", "/example space/", "", {}, sigv4_canonical.EMPTY_SHA256,
        "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    ),
    (
        "get-header-key-duplicate",
        "GET", "/", "", {"my-header1": "value2,value2,value1"}, sigv4_canonical.EMPTY_SHA256,
        "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
    (
        "get-header-value-order",
        "GET", "/", "", {"my-header1": "value4,value1,value3,value2"}, sigv4_canonical.EMPTY_SHA256,
        "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
        "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    ),
    (
        "get-header-value-trim",
        "GET", "/", "", {"my-header1": " value1", "my-header2": ' "a   b   c"'},
        sigv4_canonical.EMPTY_SHA256,
        "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "post-vanilla",
        "POST", "/", "", {}, sigv4_canonical.EMPTY_SHA256,
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "post-header-key-sort",
        "POST", "/", "", {"my-header1": "value1"}, sigv4_canonical.EMPTY_SHA256,
        "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
        "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
    (
        "post-header-value-case",
        "POST", "/", "", {"my-header1": "VALUE1"}, sigv4_canonical.EMPTY_SHA256,
        "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    ),
    (
        "post-vanilla-query",
        "POST", "/", "Param1=value1", {}, sigv4_canonical.EMPTY_SHA256,
        "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST", "/", "", {"content-type": "application/x-www-form-urlencoded"},
        FORM_BODY_SHA256,
        "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    (
        "post-x-www-form-urlencoded-parameters",
        "POST", "/", "",
        {"content-type": "application/x-www-form-urlencoded; charset=utf8"},
        FORM_BODY_SHA256,
        "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
        "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    ),
    (
        "post-sts-header-before",
        "POST", "/", "", {"x-amz-security-token": STS_TOKEN}, sigv4_canonical.EMPTY_SHA256,
        "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    ),
]  # fmt: skip


def _suite_canonical(
    method: str, path: str, query: str, extra: dict[str, str], payload_hash: str
) -> str:
    headers = {"host": SUITE_HOST, "x-amz-date": SUITE_DATE, **extra}
    return sigv4_canonical.canonical_request(
        method,
        sigv4_canonical.canonical_uri(path),
        sigv4_canonical.canonical_query(query),
        headers,
        sorted(headers),
        payload_hash,
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "extra", "payload_hash", "sts_digest", "expected"),
    [case[1:] for case in SUITE],
    ids=[case[0] for case in SUITE],
)
def test_aws_suite(
    method: str,
    path: str,
    query: str,
    extra: dict[str, str],
    payload_hash: str,
    sts_digest: str,
    expected: str,
) -> None:
    creq = _suite_canonical(method, path, query, extra, payload_hash)
    sts = sigv4_canonical.string_to_sign(SUITE_DATE, SUITE_SCOPE, creq)
    assert sts == f"AWS4-HMAC-SHA256\n{SUITE_DATE}\n{SUITE_SCOPE}\n{sts_digest}"
    key = sigv4_canonical.signing_key(SUITE_SECRET, "20150830", "us-east-1", "service")
    assert sigv4_canonical.signature(key, sts) == expected


@pytest.mark.parametrize(
    ("name", "expected_creq"),
    [
        (
            "get-vanilla-query-order-key-case",
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + sigv4_canonical.EMPTY_SHA256,
        ),
        (
            "get-header-value-trim",
            'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\n'
            "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n"
            + sigv4_canonical.EMPTY_SHA256,
        ),
        (
            "get-utf8",
            "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" + sigv4_canonical.EMPTY_SHA256,
        ),
        (
            "get-vanilla-utf8-query",
            "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" + sigv4_canonical.EMPTY_SHA256,
        ),
        (
            "post-x-www-form-urlencoded",
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n"
            "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "content-type;host;x-amz-date\n" + FORM_BODY_SHA256,
        ),
    ],
)
def test_aws_suite_canonical_requests(name: str, expected_creq: str) -> None:
    case = next(case for case in SUITE if case[0] == name)
    assert _suite_canonical(*case[1:6]) == expected_creq


def test_s3_does_not_normalize_or_double_encode_paths() -> None:
    # The generic suite normalizes these (get-relative, get-slashes...); S3 must not.
    assert sigv4_canonical.canonical_uri("/example/..") == "/example/.."
    assert sigv4_canonical.canonical_uri("//example//") == "//example//"
    assert sigv4_canonical.canonical_uri("/./example") == "/./example"
    # A decoded '%' is encoded once, not twice (the old double-encoding suite gives %2525).
    assert sigv4_canonical.canonical_uri("/a%b") == "/a%25b"
    assert sigv4_canonical.canonical_uri("/\u1234") == "/%E1%88%B4"
    assert sigv4_canonical.canonical_uri("") == "/"


def test_canonical_query_rules() -> None:
    assert sigv4_canonical.canonical_query("uploads") == "uploads="
    assert sigv4_canonical.canonical_query("b=2&a=1&a=0&c") == "a=0&a=1&b=2&c="
    assert sigv4_canonical.canonical_query("prefix=a/b") == "prefix=a%2Fb"
    assert sigv4_canonical.canonical_query("prefix=a%2fb") == "prefix=a%2Fb"
    # Go clients send a space as '+' and sign it as %20; a real plus arrives as %2B.
    assert sigv4_canonical.canonical_query("k=a+b&p=%2B") == "k=a%20b&p=%2B"
    assert sigv4_canonical.canonical_query("a=1&&b=2") == "a=1&b=2"
    assert sigv4_canonical.canonical_query("x=%FF") == "x=%FF"
    drop = sigv4_canonical.canonical_query("X-Amz-Signature=abc&a=1", exclude=["X-Amz-Signature"])
    assert drop == "a=1"


# --------------------------------------------------------------------------------------
# S3 documentation examples (AKIAIOSFODNN7EXAMPLE, 20130524T000000Z)
# --------------------------------------------------------------------------------------

DOC_AK = "AKIAIOSFODNN7EXAMPLE"
DOC_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, tzinfo=UTC)
DOC_SCOPE = "20130524/us-east-1/s3/aws4_request"
GET_OBJECT_SIGNATURE = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
PRESIGNED_SIGNATURE = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
STREAMING_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def doc_secret(access_key: str) -> str | None:
    return DOC_SK if access_key == DOC_AK else None


def get_object_request(**header_overrides: str) -> SignableRequest:
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": sigv4_canonical.EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={DOC_AK}/{DOC_SCOPE}, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            f"Signature={GET_OBJECT_SIGNATURE}"
        ),
    }
    headers.update(header_overrides)
    return SignableRequest("GET", "/test.txt", "", headers)


def test_doc_get_object_verifies() -> None:
    ctx = sigv4.verify(get_object_request(), doc_secret, "us-east-1", now=DOC_NOW)
    assert ctx is not None
    assert ctx.access_key == DOC_AK
    assert ctx.seed_signature == GET_OBJECT_SIGNATURE
    assert ctx.scope == DOC_SCOPE
    assert ctx.amz_date == "20130524T000000Z"
    assert ctx.payload_hash == sigv4_canonical.EMPTY_SHA256
    assert not ctx.presigned
    assert ctx.signing_key == sigv4_canonical.signing_key(DOC_SK, "20130524", "us-east-1")


def test_doc_get_object_signs() -> None:
    headers = sigv4_signing.sign_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        {"Range": "bytes=0-9"},
        DOC_AK,
        DOC_SK,
        payload_hash=sigv4_canonical.EMPTY_SHA256,
        now=DOC_NOW,
    )
    assert headers["authorization"].endswith(f"Signature={GET_OBJECT_SIGNATURE}")
    assert headers["host"] == "examplebucket.s3.amazonaws.com"
    assert headers["Range"] == "bytes=0-9"


def test_auth_header_spacing_is_tolerated() -> None:
    compact = (
        f"AWS4-HMAC-SHA256 Credential={DOC_AK}/{DOC_SCOPE},"
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        f"Signature={GET_OBJECT_SIGNATURE}"
    )
    request = get_object_request(authorization=compact)
    assert sigv4.verify(request, doc_secret, "us-east-1", now=DOC_NOW) is not None


def test_doc_presigned_url() -> None:
    url = sigv4_signing.presign_url(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        DOC_AK,
        DOC_SK,
        expires_s=86400,
        now=DOC_NOW,
    )
    assert url.endswith(f"&X-Amz-Signature={PRESIGNED_SIGNATURE}")
    query = urlsplit(url).query
    request = SignableRequest("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})
    ctx = sigv4.verify(request, doc_secret, "us-east-1", now=DOC_NOW + timedelta(hours=1))
    assert ctx is not None
    assert ctx.presigned
    assert ctx.payload_hash == sigv4_canonical.UNSIGNED_PAYLOAD
    assert ctx.seed_signature == PRESIGNED_SIGNATURE


def doc_presigned_query(**overrides: str) -> str:
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{DOC_AK}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
        "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "86400",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": PRESIGNED_SIGNATURE,
    }
    params.update(overrides)
    return "&".join(f"{name}={value}" for name, value in params.items() if value != "<drop>")


def verify_presigned(query: str, now: datetime = DOC_NOW) -> sigv4.AuthContext | None:
    request = SignableRequest("GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"})
    return sigv4.verify(request, doc_secret, "us-east-1", now=now)


def test_doc_presigned_query_verifies_in_any_parameter_order() -> None:
    parts = doc_presigned_query().split("&")
    assert verify_presigned("&".join(reversed(parts))) is not None


def test_doc_streaming_seed_signature() -> None:
    headers = {
        "host": "s3.amazonaws.com",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": sigv4_canonical.STREAMING_PAYLOAD,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "content-length": "66824",
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential={DOC_AK}/{DOC_SCOPE}, SignedHeaders=content-encoding;"
            "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
            f"x-amz-storage-class, Signature={STREAMING_SEED}"
        ),
    }
    request = SignableRequest("PUT", "/examplebucket/chunkObject.txt", "", headers)
    ctx = sigv4.verify(request, doc_secret, "us-east-1", now=DOC_NOW)
    assert ctx is not None
    assert ctx.seed_signature == STREAMING_SEED
    assert ctx.payload_hash == sigv4_canonical.STREAMING_PAYLOAD


def test_doc_chunk_signatures() -> None:
    key = sigv4_canonical.signing_key(DOC_SK, "20130524", "us-east-1")
    previous = STREAMING_SEED
    expected = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]
    for chunk, want in zip([b"a" * 65536, b"a" * 1024, b""], expected, strict=True):
        previous = sigv4_canonical.chunk_signature(
            key, "20130524T000000Z", DOC_SCOPE, previous, chunk
        )
        assert previous == want


def test_doc_trailer_signature() -> None:
    # AWS's trailing-header example: final chunk 2ca2aba2..., trailer sOO8/Q== -> d81f82fc...
    key = sigv4_canonical.signing_key(DOC_SK, "20130524", "us-east-1")
    final = "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"
    got = sigv4_canonical.trailer_signature(
        key, "20130524T000000Z", DOC_SCOPE, final, {"x-amz-checksum-crc32c": "sOO8/Q=="}
    )
    assert got == "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


# --------------------------------------------------------------------------------------
# Round trips through sign_headers / presign_url and verify
# --------------------------------------------------------------------------------------

AK = "lakenode"
SK = "lakenode-secret"
NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
REGION = "us-east-1"


def secret(access_key: str) -> str | None:
    return SK if access_key == AK else None


def request_from(method: str, url: str, headers: dict[str, str]) -> SignableRequest:
    """What a server would see for a request to ``url`` (path decoded, query raw)."""
    parts = urlsplit(url)
    lower = {name.lower(): value for name, value in headers.items()}
    return SignableRequest(method, unquote(parts.path), parts.query, lower)


def signed(
    method: str = "GET",
    url: str = "http://127.0.0.1:9000/bucket/key",
    headers: dict[str, str] | None = None,
    payload_hash: str = sigv4_canonical.UNSIGNED_PAYLOAD,
) -> SignableRequest:
    sent = sigv4_signing.sign_headers(
        method, url, headers or {}, AK, SK, REGION, payload_hash=payload_hash, now=NOW
    )
    return request_from(method, url, sent)


def verify(request: SignableRequest, now: datetime = NOW) -> sigv4.AuthContext | None:
    return sigv4.verify(request, secret, REGION, now=now)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/",
        "http://127.0.0.1:9000/bucket",
        "http://127.0.0.1:9000/bucket/a%20b/c",
        "http://127.0.0.1:9000/bucket/%E2%82%AC%2B%25%3F%23",
        "http://127.0.0.1:9000/bucket/dir/../key",
        "http://127.0.0.1:9000/bucket//double//slash/",
        "http://127.0.0.1:9000/bucket?list-type=2&prefix=a%2Fb&delimiter=%2F",
        "http://127.0.0.1:9000/bucket/key?uploads",
        "http://127.0.0.1:9000/bucket/key?partNumber=2&uploadId=x%2By&partNumber=1",
        "http://127.0.0.1:9000/bucket?prefix=a+b",
        "http://localhost/bucket/key",
        "https://[::1]:8443/bucket/key",
    ],
)
def test_sign_verify_round_trip(url: str) -> None:
    ctx = verify(signed(url=url))
    assert ctx is not None
    assert ctx.access_key == AK
    presigned = sigv4_signing.presign_url("GET", url, AK, SK, now=NOW)
    host = sigv4_signing.sign_headers("GET", url, {}, AK, SK, now=NOW)["host"]
    request = request_from("GET", presigned, {"host": host})
    ctx = verify(request)
    assert ctx is not None
    assert ctx.presigned


@settings(max_examples=60, deadline=None)
@given(
    key=st.text(st.characters(codec="utf-8"), min_size=1, max_size=40),
    value=st.text(st.characters(codec="utf-8"), max_size=20),
)
def test_round_trip_any_key_and_query(key: str, value: str) -> None:
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/')}?prefix={quote(value, safe='')}"
    assert verify(signed(url=url)) is not None


def test_extra_headers_are_signed_and_checked() -> None:
    request = signed("PUT", headers={"Content-Type": "text/plain", "x-amz-meta-a": "1  2"})
    assert request.headers["authorization"].count("x-amz-meta-a") == 1
    assert verify(request) is not None
    # Whitespace inside a value is canonicalized, so a proxy re-folding it does not matter.
    assert verify(replace(request, headers={**request.headers, "x-amz-meta-a": " 1 2 "}))
    tampered = replace(request, headers={**request.headers, "x-amz-meta-a": "3"})
    with pytest.raises(S3Error) as caught:
        verify(tampered)
    assert caught.value.code == "SignatureDoesNotMatch"
    # Unsigned headers may change freely.
    assert verify(replace(request, headers={**request.headers, "user-agent": "x"}))


def test_user_agent_is_not_signed() -> None:
    headers = sigv4_signing.sign_headers("GET", "http://h/b", {"User-Agent": "ua"}, AK, SK, now=NOW)
    assert "user-agent" not in headers["authorization"]


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"path": "/bucket/other"},
        {"path": "/bucket/key/"},
        {"query_string": "x=1"},
    ],
)
def test_any_change_breaks_the_signature(change: dict[str, str]) -> None:
    request = replace(signed(), **change)  # type: ignore[arg-type]
    with pytest.raises(S3Error) as caught:
        verify(request)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.status == 403


def test_wrong_secret_is_signature_mismatch() -> None:
    sent = sigv4_signing.sign_headers("GET", "http://h/b/k", {}, AK, "not-the-secret", now=NOW)
    with pytest.raises(S3Error) as caught:
        verify(request_from("GET", "http://h/b/k", sent))
    assert caught.value.code == "SignatureDoesNotMatch"
    details = caught.value.details
    assert details["CanonicalRequest"].startswith("GET\n/b/k\n\nhost:h\n")
    assert details["StringToSign"].startswith(f"AWS4-HMAC-SHA256\n{sent['x-amz-date']}\n")
    assert details["SignatureProvided"] == sent["authorization"].rsplit("=", 1)[1]


def test_presigned_tampering_and_pinned_payload_hash() -> None:
    url = sigv4_signing.presign_url("GET", "http://h/b/k?versionId=1", AK, SK, now=NOW)
    with pytest.raises(S3Error) as caught:
        verify(request_from("PUT", url, {"host": "h"}))
    assert caught.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as caught:
        verify(request_from("GET", url.replace("versionId=1", "versionId=2"), {"host": "h"}))
    assert caught.value.code == "SignatureDoesNotMatch"
    # A payload hash carried in the query is signed and becomes ctx.payload_hash.
    digest = sigv4_canonical.EMPTY_SHA256
    pinned = sigv4_signing.presign_url(
        "PUT", f"http://h/b/k?X-Amz-Content-Sha256={digest}", AK, SK, now=NOW
    )
    ctx = verify(request_from("PUT", pinned, {"host": "h"}))
    assert ctx is not None
    assert ctx.payload_hash == digest


def test_date_header_used_without_x_amz_date() -> None:
    headers = {
        "host": "h",
        "date": "Fri, 01 Mar 2024 12:00:00 GMT",
        "x-amz-content-sha256": sigv4_canonical.UNSIGNED_PAYLOAD,
    }
    names = ["date", "host", "x-amz-content-sha256"]
    scope = f"20240301/{REGION}/s3/aws4_request"
    creq = sigv4_canonical.canonical_request(
        "GET", "/b", "", headers, names, sigv4_canonical.UNSIGNED_PAYLOAD
    )
    sts = sigv4_canonical.string_to_sign("20240301T120000Z", scope, creq)
    sig = sigv4_canonical.signature(sigv4_canonical.signing_key(SK, "20240301", REGION), sts)
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={sig}"
    )
    ctx = verify(SignableRequest("GET", "/b", "", headers))
    assert ctx is not None
    assert ctx.amz_date == "20240301T120000Z"


def test_anonymous_request_is_none() -> None:
    request = SignableRequest("GET", "/bucket/key", "list-type=2", {"host": "h"})
    assert verify(request) is None


def test_signing_keys_are_cached() -> None:
    verify(signed())
    before = sigv4_canonical.signing_key.cache_info().hits
    verify(signed())
    assert sigv4_canonical.signing_key.cache_info().hits > before
    assert sigv4_canonical.signing_key.cache_info().maxsize is not None


def test_payload_verifier() -> None:
    hasher = sigv4.payload_sha256_verifier(FORM_BODY_SHA256.upper())
    hasher.update(b"Param1=")
    hasher.update(b"value1")
    hasher.verify()
    bad = sigv4.payload_sha256_verifier(FORM_BODY_SHA256)
    bad.update(b"Param1=value2")
    with pytest.raises(S3Error) as caught:
        bad.verify()
    assert caught.value.code == "XAmzContentSHA256Mismatch"
    assert sigv4.is_sha256_hex(FORM_BODY_SHA256)
    assert not sigv4.is_sha256_hex(sigv4_canonical.UNSIGNED_PAYLOAD)


# --------------------------------------------------------------------------------------
# Every error
# --------------------------------------------------------------------------------------


def expect_error(request: SignableRequest, code: str, now: datetime = NOW) -> S3Error:
    with pytest.raises(S3Error) as caught:
        sigv4.verify(request, secret, REGION, now=now)
    assert caught.value.code == code, caught.value.message
    return caught.value


def with_auth(authorization: str, **headers: str) -> SignableRequest:
    base = {
        "host": "h",
        "x-amz-date": "20240301T120000Z",
        "x-amz-content-sha256": sigv4_canonical.UNSIGNED_PAYLOAD,
        "authorization": authorization,
    }
    base.update(headers)
    return SignableRequest("GET", "/b/k", "", base)


GOOD_SIG = "0" * 64


@pytest.mark.parametrize(
    "authorization",
    [
        f"AWS4-HMAC-SHA256 Credential={AK}/20240301/us-east-1/s3/aws4_request",
        f"AWS4-HMAC-SHA256 Credential={AK}/20240301/us-east-1/s3/aws4_request, "
        f"Signature={GOOD_SIG}",
        f"AWS4-HMAC-SHA256 Credential={AK}/20240301/us-east-1/aws4_request, "
        f"SignedHeaders=host, Signature={GOOD_SIG}",
        f"AWS4-HMAC-SHA256 Credential=/20240301/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host, Signature={GOOD_SIG}",
        f"AWS4-HMAC-SHA256 Credential={AK}/2024-03-01/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host, Signature={GOOD_SIG}",
        f"AWS4-HMAC-SHA256 garbage, SignedHeaders=host, Signature={GOOD_SIG}",
        f"AWS4-HMAC-SHA256 Credential={AK}/20240301/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;;x-amz-date, Signature={GOOD_SIG}",
        "AWS4-HMAC-SHA256",
        f"AWS4-HMAC-SHA512 Credential={AK}/20240301/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host, Signature={GOOD_SIG}",
        "Bearer abc",
    ],
)
def test_malformed_authorization_header(authorization: str) -> None:
    expect_error(with_auth(authorization), "AuthorizationHeaderMalformed")


def scoped(scope: str, signed_headers: str = "host;x-amz-date") -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={signed_headers}, "
        f"Signature={GOOD_SIG}"
    )


def test_host_must_be_signed() -> None:
    error = expect_error(
        with_auth(scoped("20240301/us-east-1/s3/aws4_request", "x-amz-date")),
        "AuthorizationHeaderMalformed",
    )
    assert "host" in error.message


def test_wrong_region() -> None:
    error = expect_error(
        with_auth(scoped("20240301/eu-west-1/s3/aws4_request")), "AuthorizationHeaderMalformed"
    )
    assert "the region 'eu-west-1' is wrong; expecting 'us-east-1'" in error.message
    assert error.status == 400


@pytest.mark.parametrize(
    "scope",
    ["20240301/us-east-1/ec2/aws4_request", "20240301/us-east-1/s3/aws5_request"],
)
def test_wrong_service_or_terminator(scope: str) -> None:
    expect_error(with_auth(scoped(scope)), "AuthorizationHeaderMalformed")


def test_scope_date_must_match_request_date() -> None:
    error = expect_error(
        with_auth(scoped("20240302/us-east-1/s3/aws4_request")), "AuthorizationHeaderMalformed"
    )
    assert "X-Amz-Date" in error.message


def test_unknown_access_key() -> None:
    sent = sigv4_signing.sign_headers("GET", "http://h/b/k", {}, "nobody", SK, now=NOW)
    error = expect_error(request_from("GET", "http://h/b/k", sent), "InvalidAccessKeyId")
    assert error.status == 403


def test_missing_content_sha256_header() -> None:
    request = signed()
    headers = {k: v for k, v in request.headers.items() if k != "x-amz-content-sha256"}
    error = expect_error(replace(request, headers=headers), "InvalidRequest")
    assert error.message == "Missing required header for this request: x-amz-content-sha256"


def test_invalid_content_sha256_value() -> None:
    request = signed(payload_hash="not-a-hash")
    expect_error(request, "InvalidArgument")


@pytest.mark.parametrize("offset", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_request_time_too_skewed(offset: timedelta) -> None:
    error = expect_error(signed(), "RequestTimeTooSkewed", now=NOW + offset)
    assert error.status == 403
    assert error.details == {
        "RequestTime": "Fri, 01 Mar 2024 12:00:00 GMT",
        "ServerTime": (NOW + offset).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "MaxAllowedSkewMilliseconds": "900000",
    }


def test_small_skew_is_accepted() -> None:
    assert verify(signed(), now=NOW + timedelta(minutes=14)) is not None
    assert verify(signed(), now=NOW - timedelta(minutes=14)) is not None


def test_missing_or_bad_date_is_access_denied() -> None:
    request = signed()
    no_date = {k: v for k, v in request.headers.items() if k != "x-amz-date"}
    expect_error(replace(request, headers=no_date), "AccessDenied")
    bad_date = {**request.headers, "x-amz-date": "2024-03-01T12:00:00Z"}
    expect_error(replace(request, headers=bad_date), "AccessDenied")


def test_presigned_expiry() -> None:
    url = sigv4_signing.presign_url("GET", "http://h/b/k", AK, SK, expires_s=60, now=NOW)
    request = request_from("GET", url, {"host": "h"})
    assert verify(request, now=NOW + timedelta(seconds=60)) is not None
    error = expect_error(request, "AccessDenied", now=NOW + timedelta(seconds=61))
    assert error.message == "Request has expired"
    # Presigned URLs are not subject to the 15-minute skew rule while unexpired...
    long_lived = sigv4_signing.presign_url("GET", "http://h/b/k", AK, SK, expires_s=86400, now=NOW)
    assert verify(request_from("GET", long_lived, {"host": "h"}), now=NOW + timedelta(hours=20))
    # ...but one dated more than 15 minutes ahead is not valid yet.
    error = expect_error(request, "AccessDenied", now=NOW - timedelta(minutes=16))
    assert error.message == "Request is not valid yet"
    assert verify(request, now=NOW - timedelta(minutes=14)) is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"X-Amz-Expires": "604801"},
        {"X-Amz-Expires": "-5"},
        {"X-Amz-Expires": "soon"},
        {"X-Amz-Expires": "<drop>"},
        {"X-Amz-Credential": "<drop>"},
        {"X-Amz-SignedHeaders": "<drop>"},
        {"X-Amz-Date": "<drop>"},
        {"X-Amz-Date": "2013-05-24"},
        {"X-Amz-Algorithm": "AWS4-HMAC-SHA512"},
        {"X-Amz-Credential": f"{DOC_AK}%2F20130524%2Feu-west-1%2Fs3%2Faws4_request"},
        {"X-Amz-Credential": f"{DOC_AK}%2F20130525%2Fus-east-1%2Fs3%2Faws4_request"},
        {"X-Amz-Credential": f"{DOC_AK}%2F20130524%2Fus-east-1%2Fs3"},
        {"X-Amz-SignedHeaders": "x-amz-date"},
    ],
)
def test_malformed_presigned_parameters(overrides: dict[str, str]) -> None:
    with pytest.raises(S3Error) as caught:
        verify_presigned(doc_presigned_query(**overrides))
    assert caught.value.code == "AuthorizationQueryParametersError", caught.value.message
    assert caught.value.status == 400


def test_presigned_wrong_region_message() -> None:
    query = doc_presigned_query(
        **{"X-Amz-Credential": f"{DOC_AK}%2F20130524%2Feu-west-1%2Fs3%2Faws4_request"}
    )
    with pytest.raises(S3Error) as caught:
        verify_presigned(query)
    assert "the region 'eu-west-1' is wrong; expecting 'us-east-1'" in caught.value.message


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("-5", "X-Amz-Expires must be non-negative"),
        ("soon", "X-Amz-Expires should be a number"),
        (
            "604801",
            "X-Amz-Expires must be less than a week (in seconds); that is, the given "
            "X-Amz-Expires must be less than 604800 seconds",
        ),
    ],
)
def test_presigned_expires_messages_are_aws(expires: str, message: str) -> None:
    with pytest.raises(S3Error) as caught:
        verify_presigned(doc_presigned_query(**{"X-Amz-Expires": expires}))
    assert caught.value.message == message


def test_presigned_zero_expires_is_expired() -> None:
    # 0 seconds: valid at its own X-Amz-Date instant only, expired a moment later (AWS 403).
    query = doc_presigned_query(**{"X-Amz-Expires": "0"})
    with pytest.raises(S3Error) as caught:
        verify_presigned(query, now=DOC_NOW + timedelta(seconds=1))
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)
    assert caught.value.message == "Request has expired"
    assert caught.value.details["X-Amz-Expires"] == "0"


def test_presigned_max_expiry_accepted() -> None:
    # The longest allowed URL parses (its signature is the doc's for 86400, so it mismatches).
    with pytest.raises(S3Error) as caught:
        verify_presigned(doc_presigned_query(**{"X-Amz-Expires": "604800"}))
    assert caught.value.code == "SignatureDoesNotMatch"


def test_sigv2_is_rejected_clearly() -> None:
    header = with_auth("AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")
    error = expect_error(header, "AccessDenied")
    assert "Signature Version 4" in error.message
    assert "not supported" in error.message
    query = SignableRequest(
        "GET", "/b/k", "AWSAccessKeyId=AK&Expires=1700000000&Signature=abc%3D", {"host": "h"}
    )
    error = expect_error(query, "AccessDenied")
    assert "Signature Version 4" in error.message


def test_two_auth_mechanisms_are_rejected() -> None:
    request = signed()
    request = replace(request, query_string=doc_presigned_query())
    expect_error(request, "InvalidArgument")


def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    request = signed()
    auth = request.headers["authorization"]
    bad = auth[: auth.index("Signature=")] + "Signature=\u00e9\u00e9"
    expect_error(replace(request, headers={**request.headers, "authorization": bad}),
                 "SignatureDoesNotMatch")  # fmt: skip


# --------------------------------------------------------------------------------------
# Unsigned x-amz-* headers, non-ASCII header values
# --------------------------------------------------------------------------------------


def test_unsigned_amz_header_is_refused() -> None:
    request = signed("PUT", headers={"x-amz-meta-a": "1"})
    assert verify(request) is not None
    added = {**request.headers, "x-amz-meta-evil": "x", "x-amz-acl": "public-read"}
    error = expect_error(replace(request, headers=added), "AccessDenied")
    assert error.message == "There were headers present in the request which were not signed"
    assert error.details == {"HeadersNotSigned": "x-amz-acl, x-amz-meta-evil"}
    # Other unsigned headers stay allowed (User-Agent, Expect... are never signed).
    assert verify(replace(request, headers={**request.headers, "x-amzn-trace-id": "1"}))


def test_unsigned_amz_header_on_presigned_url_is_refused() -> None:
    url = "http://127.0.0.1:9000/bucket/key"
    presigned = sigv4_signing.presign_url("PUT", url, AK, SK, now=NOW)
    host = {"host": "127.0.0.1:9000"}
    assert verify(request_from("PUT", presigned, host)) is not None
    error = expect_error(
        request_from("PUT", presigned, {**host, "x-amz-meta-a": "1"}), "AccessDenied"
    )
    assert error.details["HeadersNotSigned"] == "x-amz-meta-a"
    # The payload hash is bound on its own: an unsigned x-amz-content-sha256 is accepted.
    unsigned_hash = {**host, "x-amz-content-sha256": sigv4_canonical.UNSIGNED_PAYLOAD}
    assert verify(request_from("PUT", presigned, unsigned_hash)) is not None


def test_utf8_metadata_signed_by_botocore_verifies() -> None:
    request = AWSRequest(
        method="PUT",
        url="http://127.0.0.1:9000/bucket/key",
        headers={"x-amz-meta-name": "café ☕ ünï", "Content-Type": "text/plain"},
        data=b"",
    )
    S3SigV4Auth(Credentials(AK, SK), "s3", REGION).add_auth(request)
    sent = [(n.lower().encode(), v.encode("utf-8")) for n, v in request.headers.items()]
    sent.append((b"host", b"127.0.0.1:9000"))
    signable = SignableRequest("PUT", "/bucket/key", "", sigv4.signable_headers(sent))
    assert signable.headers["x-amz-meta-name"] == "café ☕ ünï"
    assert sigv4.verify(signable, secret, REGION) is not None
    # Read as latin-1 (each byte one character) the value hashes differently and fails.
    latin = {n.decode(): v.decode("latin-1") for n, v in sent}
    with pytest.raises(S3Error) as caught:
        sigv4.verify(replace(signable, headers=latin), secret, REGION)
    assert caught.value.code == "SignatureDoesNotMatch"


def test_signable_headers_joins_repeats_and_keeps_undecodable_bytes() -> None:
    headers = sigv4.signable_headers(
        [(b"X-Amz-Meta-A", b" one "), (b"x-amz-meta-a", b"two"), (b"x-amz-meta-b", b"\xe9t\xe9")]
    )
    assert headers["x-amz-meta-a"] == "one,two"
    assert headers["x-amz-meta-b"].encode("utf-8", "surrogateescape") == b"\xe9t\xe9"
