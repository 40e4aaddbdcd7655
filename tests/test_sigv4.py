"""SigV4 signing (engine/sigv4.py): AWS's published test-suite vectors, then botocore's own signers on
fixed inputs (the reference implementation every AWS SDK for Python uses), then the wiring: a provider
that declares `auth.sigv4` gets every call signed over the bytes actually sent, and bad specs fail at load."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from mediagate import catalog, sigv4
from mediagate.provider import ProviderSpecError, compile_provider

# source: AWS Signature Version 4 test suite (aws-sig-v4-test-suite: get-vanilla,
#         get-vanilla-query-order-key-case), credentials and clock as published there
SUITE = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service")
SUITE_TIME = datetime.datetime(2015, 8, 30, 12, 36, 0, tzinfo=datetime.timezone.utc)
PREFIX = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="


@pytest.mark.parametrize(("url", "signature"), [
    ("https://example.amazonaws.com/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("https://example.amazonaws.com/?Param2=value2&Param1=value1",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
])
def test_aws_published_vectors(url: str, signature: str) -> None:
    signed = sigv4.sign("GET", url, {}, sigv4.EMPTY_SHA256, SUITE, SUITE_TIME)
    assert signed.headers["authorization"] == PREFIX + signature
    assert signed.headers["host"] == "example.amazonaws.com"
    assert signed.headers["x-amz-date"] == "20150830T123600Z"


def _botocore(method: str, url: str, headers: dict[str, str], body: bytes, creds: sigv4.Credentials,
              signer: type[SigV4Auth] = SigV4Auth) -> str:
    """botocore's Authorization for the same request at the same instant."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    auth = signer(BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
                  creds.service, creds.region)
    if signer is S3SigV4Auth:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    with mock.patch("botocore.auth.get_current_datetime", return_value=SUITE_TIME.replace(tzinfo=None)):
        auth.add_auth(request)
    return str(request.headers["Authorization"])


BEDROCK = sigv4.Credentials("AKIAEXAMPLE", "secret/key+EXAMPLE", "us-east-1", "bedrock")
CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    # what boto3's invoke_model sends for a model id with a colon (encoded %3A in the path)
    ("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-canvas-v1%3A0/invoke",
     {"Content-Type": "application/json", "Accept": "application/json"},
     b'{"taskType":"TEXT_IMAGE","textToImageParams":{"text":"a fox \\u00e9"}}'),
    # an ARN as a path label: colons and the slash encoded
    ("GET", "https://bedrock-runtime.eu-west-1.amazonaws.com/async-invoke/"
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aasync-invoke%2Fabcdef123456", {}, b""),
    ("GET", "https://bedrock-runtime.us-east-1.amazonaws.com/async-invoke?maxResults=10&statusEquals=Completed&a%20b=c%2Fd",
     {}, b""),
]


@pytest.mark.parametrize(("method", "url", "headers", "body"), CASES)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLE//token=="])
def test_matches_botocore(method: str, url: str, headers: dict[str, str], body: bytes, token: str | None) -> None:
    creds = sigv4.Credentials(BEDROCK.access_key_id, BEDROCK.secret_access_key, "us-east-1", "bedrock", token)
    ours = sigv4.sign(method, url, headers, hashlib.sha256(body).hexdigest(), creds, SUITE_TIME)
    assert ours.headers["authorization"] == _botocore(method, url, headers, body, creds)
    if token:
        assert ours.headers["x-amz-security-token"] == token


def test_s3_matches_botocore() -> None:
    """S3 signs the path as sent (no second encoding) and wants the payload hash as a header."""
    creds = sigv4.Credentials("AKIAEXAMPLE", "secret", "us-west-2", "s3", None, content_sha256_header=True,
                              path_encoded_once=True)
    url = "https://bucket.s3.us-west-2.amazonaws.com/jobs/abc%3Adef/output.mp4"
    ours = sigv4.sign("GET", url, {}, sigv4.EMPTY_SHA256, creds, SUITE_TIME)
    assert ours.headers["x-amz-content-sha256"] == sigv4.EMPTY_SHA256
    assert ours.headers["authorization"] == _botocore("GET", url, {}, b"", creds, S3SigV4Auth)


def test_the_url_sent_is_the_url_signed() -> None:
    """However a template wrote the path (a literal colon, or already encoded), one form is sent and signed."""
    a = sigv4.sign("POST", "https://h.example/model/amazon.nova-canvas-v1:0/invoke", {}, sigv4.EMPTY_SHA256, BEDROCK, SUITE_TIME)
    b = sigv4.sign("POST", "https://h.example/model/amazon.nova-canvas-v1%3A0/invoke", {}, sigv4.EMPTY_SHA256, BEDROCK, SUITE_TIME)
    assert a == b and a.url == "https://h.example/model/amazon.nova-canvas-v1%3A0/invoke"


def test_one_byte_of_body_changes_the_signature() -> None:
    one = sigv4.sign("POST", "https://h.example/x", {}, hashlib.sha256(b"{}").hexdigest(), BEDROCK, SUITE_TIME)
    two = sigv4.sign("POST", "https://h.example/x", {}, hashlib.sha256(b"{ }").hexdigest(), BEDROCK, SUITE_TIME)
    assert one.headers["authorization"] != two.headers["authorization"]


def test_host_keeps_a_non_default_port() -> None:
    signed = sigv4.sign("GET", "http://127.0.0.1:8123/x", {}, sigv4.EMPTY_SHA256, BEDROCK, SUITE_TIME)
    assert signed.headers["host"] == "127.0.0.1:8123"
    assert sigv4.sign("GET", "https://h.example:443/x", {}, sigv4.EMPTY_SHA256, BEDROCK, SUITE_TIME).headers["host"] == "h.example"


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": "signed", "base_url": "https://h.example",
        "secrets": {"key_id": {"env": "SIGNED_KEY_ID"}, "secret": {"env": "SIGNED_SECRET"}},
        "auth": {"sigv4": {"access_key_id": "{{ secrets.key_id }}", "secret_access_key": "{{ secrets.secret }}",
                           "region": "us-east-1", "service": "bedrock"}},
        "operations": {"generate": {"request": {"method": "POST", "path": "/x", "json": {"prompt": "{{ prompt }}"}}}},
    }
    spec.update(over)
    return spec


def test_multipart_on_a_sigv4_provider_is_refused_at_load() -> None:
    spec = _spec(operations={"generate": {"request": {"method": "POST", "path": "/x", "multipart": {"prompt": "{{ prompt }}"}}}})
    with pytest.raises(ProviderSpecError, match=r"\$\.operations\.generate\.request\.multipart: auth\.sigv4"):
        compile_provider(spec, "signed.yaml", {})


def test_a_step_naming_an_undeclared_endpoint_is_refused_at_load() -> None:
    op = {"request": {"method": "POST", "path": "/x", "json": {}},
          "async": {"poll": {"path": "/p"}, "done_when": "done", "result": {"path": "/r", "endpoint": "store", "binary": True}}}
    with pytest.raises(ProviderSpecError, match=r"async\.result\.endpoint: no endpoint 'store'"):
        compile_provider(_spec(operations={"video": op}), "signed.yaml", {})


def test_sigv4_templates_are_checked_in_their_context() -> None:
    from mediagate import speccheck
    spec = _spec()
    spec["auth"]["sigv4"]["region"] = "{{ prompt }}"   # no request context when a download is signed
    problems = speccheck.provider(spec)
    assert any(path == "$.auth.sigv4.region" for path, _ in problems), problems


def test_shipped_catalog_still_loads() -> None:
    assert catalog.load().providers
