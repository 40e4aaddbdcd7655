"""The Vertex AI simulator, driven through google-genai in Vertex mode (and google-auth's
real service-account JWT flow against the simulator's token endpoint)."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import google.auth.exceptions
import google.oauth2.credentials
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

from mediagate.sandbox.vertex_keys import CLIENT_EMAIL, PRIVATE_KEY_PEM, service_account_info
from mediagate.sandbox.testing import SimulatorThread

pytestmark = pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")

PRO = "gemini-3-pro-image-preview"
IMAGEN = "imagen-4.0-generate-001"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
MODELS = "/vertex/v1beta1/projects/p/locations/us-central1/publishers/google/models"


def vertex_client(sim: SimulatorThread, credentials: Any) -> genai.Client:
    """google-genai in Vertex mode: project/location set, so it sends OAuth bearer tokens and
    builds ``{base_url}/v1beta1/projects/p/locations/us-central1/publishers/google/models/...``."""
    return genai.Client(vertexai=True, project="p", location="us-central1", credentials=credentials,
                        http_options=types.HttpOptions(base_url=sim.base_url + "/vertex"))


@pytest.fixture
def static_vertex(sim: SimulatorThread) -> Iterator[genai.Client]:
    client = vertex_client(sim, google.oauth2.credentials.Credentials(token="sandbox"))
    yield client
    client.close()


@pytest.fixture
def sa_vertex(sim: SimulatorThread) -> Iterator[genai.Client]:
    info = service_account_info(sim.url("/vertex/oauth2/token"))
    client = vertex_client(sim, service_account.Credentials.from_service_account_info(info, scopes=SCOPES))
    yield client
    client.close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], key_pem: str = PRIVATE_KEY_PEM, alg: str = "RS256") -> str:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64url(signature)}"


def grant(util: SimpleNamespace, sim: SimulatorThread, assertion: str,
          grant_type: str = "urn:ietf:params:oauth:grant-type:jwt-bearer") -> tuple[int, dict[str, Any]]:
    form = urllib.parse.urlencode({"grant_type": grant_type, "assertion": assertion}).encode()
    status, _, raw = util.http("POST", sim.url("/vertex/oauth2/token"), form,
                               {"Content-Type": "application/x-www-form-urlencoded"})
    return status, json.loads(raw)


def claims(sim: SimulatorThread, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": CLIENT_EMAIL, "aud": sim.url("/vertex/oauth2/token"), "iat": now, "exp": now + 3600,
            "scope": SCOPES[0], **overrides}


def test_generate_content_with_a_static_token(sim: SimulatorThread, static_vertex: genai.Client,
                                              util: SimpleNamespace) -> None:
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                         image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"))
    resp = static_vertex.models.generate_content(model=PRO, contents="a harbour", config=config)
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.STOP
    parts = [p for p in resp.candidates[0].content.parts or [] if p.inline_data]  # type: ignore[union-attr]
    assert parts and parts[0].inline_data and parts[0].inline_data.data
    assert util.decode_bytes(parts[0].inline_data.data).size == (2752, 1536)
    assert resp.create_time is not None
    logged = sim.requests("vertex")[-1]
    assert logged["path"] == f"{MODELS}/{PRO}:generateContent"
    assert logged["headers"]["authorization"] == "Bearer sandbox"


@pytest.mark.parametrize(("model", "ratio", "expected"), [
    ("gemini-2.5-flash-image", "21:9", (1536, 672)),
    ("gemini-3.1-flash-image-preview", "1:4", (512, 2064)),
])
def test_other_gemini_models_on_vertex(static_vertex: genai.Client, util: SimpleNamespace, model: str, ratio: str,
                                       expected: tuple[int, int]) -> None:
    config = types.GenerateContentConfig(response_modalities=["IMAGE"],
                                         image_config=types.ImageConfig(aspect_ratio=ratio))
    resp = static_vertex.models.generate_content(model=model, contents="x", config=config)
    part = resp.candidates[0].content.parts[0]  # type: ignore[index, union-attr]
    assert part.inline_data and util.decode_bytes(part.inline_data.data).size == expected  # type: ignore[arg-type]


def test_service_account_jwt_flow_and_imagen(sim: SimulatorThread, sa_vertex: genai.Client,
                                             util: SimpleNamespace) -> None:
    resp = sa_vertex.models.generate_images(
        model=IMAGEN, prompt="a lighthouse at dusk",
        config=types.GenerateImagesConfig(number_of_images=2, aspect_ratio="16:9", enhance_prompt=True))
    assert resp.generated_images and len(resp.generated_images) == 2
    for generated in resp.generated_images:
        assert generated.image and generated.image.mime_type == "image/png" and generated.image.image_bytes
        assert util.decode_bytes(generated.image.image_bytes).size == (1408, 768)
        assert generated.enhanced_prompt and "a lighthouse at dusk" in generated.enhanced_prompt
    token_call, predict = sim.requests("vertex")
    assert token_call["path"] == "/vertex/oauth2/token"
    assert token_call["form"]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert token_call["form"]["iss"] == CLIENT_EMAIL
    assert predict["path"] == f"{MODELS}/{IMAGEN}:predict"
    assert predict["headers"]["authorization"].startswith("Bearer ya29.sim-")
    assert predict["json"]["parameters"] == {"sampleCount": 2, "aspectRatio": "16:9", "enhancePrompt": True}


@pytest.mark.parametrize(("model", "config", "expected"), [
    (IMAGEN, {"aspect_ratio": "16:9", "image_size": "2K"}, (2816, 1536)),
    ("imagen-4.0-ultra-generate-001", {"aspect_ratio": "3:4", "image_size": "2K"}, (1792, 2560)),
    ("imagen-4.0-fast-generate-001", {"aspect_ratio": "4:3"}, (1280, 896)),
    ("imagen-3.0-generate-002", {"aspect_ratio": "9:16"}, (768, 1408)),
    (IMAGEN, {"output_mime_type": "image/jpeg", "output_compression_quality": 60}, (1024, 1024)),
])
def test_imagen_sizes(static_vertex: genai.Client, util: SimpleNamespace, model: str, config: dict[str, Any],
                      expected: tuple[int, int]) -> None:
    resp = static_vertex.models.generate_images(model=model, prompt="size check",
                                                config=types.GenerateImagesConfig(number_of_images=1, **config))
    assert resp.generated_images and resp.generated_images[0].image
    image = util.decode_bytes(resp.generated_images[0].image.image_bytes)
    assert image.size == expected
    assert image.format == ("JPEG" if config.get("output_mime_type") == "image/jpeg" else "PNG")
    assert resp.generated_images[0].enhanced_prompt is None


@pytest.mark.parametrize(("model", "config"), [
    ("imagen-4.0-fast-generate-001", {"image_size": "2K"}),
    ("imagen-3.0-generate-002", {"image_size": "2K"}),
    (IMAGEN, {"aspect_ratio": "21:9"}),
    (IMAGEN, {"number_of_images": 5}),
])
def test_imagen_invalid_arguments(static_vertex: genai.Client, model: str, config: dict[str, Any]) -> None:
    with pytest.raises(errors.ClientError) as err:
        static_vertex.models.generate_images(model=model, prompt="x", config=types.GenerateImagesConfig(**config))
    assert err.value.code == 400 and err.value.status == "INVALID_ARGUMENT"


def test_imagen_safety_filtering(static_vertex: genai.Client, sim: SimulatorThread, util: SimpleNamespace) -> None:
    blocked = static_vertex.models.generate_images(
        model=IMAGEN, prompt="forbidden [sim:safety]", config=types.GenerateImagesConfig(number_of_images=2))
    assert not blocked.generated_images  # every image filtered, no reason asked for: an empty response
    _, _, raw = util.http("POST", sim.url(f"{MODELS}/{IMAGEN}:predict"),
                          {"instances": [{"prompt": "forbidden [sim:safety]"}], "parameters": {"sampleCount": 2}},
                          {"Authorization": "Bearer sandbox"})
    assert json.loads(raw) == {}
    reasoned = static_vertex.models.generate_images(
        model=IMAGEN, prompt="forbidden [sim:safety]",
        config=types.GenerateImagesConfig(number_of_images=2, include_rai_reason=True))
    assert reasoned.generated_images and len(reasoned.generated_images) == 1
    only = reasoned.generated_images[0]
    assert not (only.image and only.image.image_bytes)  # the SDK maps the reason-only entry to an empty Image
    assert only.rai_filtered_reason and "filtered out 2 generated images" in only.rai_filtered_reason
    partial = static_vertex.models.generate_images(
        model=IMAGEN, prompt="borderline [sim:safety-partial]",
        config=types.GenerateImagesConfig(number_of_images=3, include_rai_reason=True))
    assert partial.generated_images
    assert [bool(g.image and g.image.image_bytes) for g in partial.generated_images] == [True, True, False]
    with pytest.raises(errors.ClientError) as err:
        static_vertex.models.generate_images(model=IMAGEN, prompt="x [sim:prompt-blocked]")
    assert err.value.code == 400 and "Responsible AI" in (err.value.message or "")


def test_gemini_faults_on_vertex(static_vertex: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as throttled:
        static_vertex.models.generate_content(model=PRO, contents="x [sim:429]")
    assert throttled.value.code == 429 and throttled.value.status == "RESOURCE_EXHAUSTED"
    assert "error-code-429" in (throttled.value.message or "")
    with pytest.raises(errors.ServerError) as unavailable:
        static_vertex.models.generate_content(model=PRO, contents="x [sim:503]")
    assert unavailable.value.code == 503
    with pytest.raises(errors.ClientError) as imagen_throttled:
        static_vertex.models.generate_images(model=IMAGEN, prompt="x [sim:429]")
    assert imagen_throttled.value.code == 429
    safety = static_vertex.models.generate_content(model=PRO, contents="x [sim:safety]")
    assert safety.candidates and safety.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    with pytest.raises(errors.ClientError) as missing:
        static_vertex.models.generate_content(model="gemini-9-image", contents="x")
    assert missing.value.code == 404 and "Publisher Model `projects/p/locations/us-central1" in \
        (missing.value.message or "")


def test_vertex_auth_rejections(sim: SimulatorThread, util: SimpleNamespace) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    for headers, reason in (({}, "CREDENTIALS_MISSING"), ({"Authorization": "Bearer bad-token"}, None),
                            ({"Authorization": "Bearer ya29.not-issued-here"}, None)):
        status, _, raw = util.http("POST", sim.url(f"{MODELS}/{PRO}:generateContent"), body, headers)
        error = json.loads(raw)["error"]
        assert status == 401 and error["status"] == "UNAUTHENTICATED"
        assert (error.get("details") or [{}])[0].get("reason") == reason
    bad = vertex_client(sim, google.oauth2.credentials.Credentials(token="bad-token"))
    with bad, pytest.raises(errors.ClientError) as err:
        bad.models.generate_content(model=PRO, contents="x")
    assert err.value.code == 401
    status, _, _ = util.http("POST", sim.url(f"/vertex/v1/projects/p/locations/europe-west4/publishers/google/models/"
                                             f"{PRO}:generateContent"), body, {"Authorization": "Bearer sandbox"})
    assert status == 200


def test_token_endpoint(sim: SimulatorThread, util: SimpleNamespace) -> None:
    status, ok = grant(util, sim, make_jwt(claims(sim)))
    assert status == 200 and ok["token_type"] == "Bearer" and ok["expires_in"] == 3599
    assert ok["access_token"].startswith("ya29.sim-")
    status, _, _ = util.http("POST", sim.url(f"{MODELS}/{PRO}:generateContent"),
                             {"contents": [{"parts": [{"text": "x"}]}]},
                             {"Authorization": f"Bearer {ok['access_token']}"})
    assert status == 200
    google_aud = make_jwt(claims(sim, aud="https://oauth2.googleapis.com/token"))
    assert grant(util, sim, google_aud)[0] == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    now = int(time.time())
    cases = [
        (make_jwt(claims(sim), key_pem=other_key), "Invalid JWT Signature."),
        (make_jwt(claims(sim, aud="https://example.com/token")), "audience"),
        (make_jwt(claims(sim, iat=now - 7200, exp=now - 3600)), "short-lived"),
        (make_jwt(claims(sim, exp=now + 7200)), "short-lived"),
        (make_jwt(claims(sim, iss="someone@else.iam.gserviceaccount.com")), "account not found"),
        ("not-a-jwt", "three-part"),
    ]
    for assertion, hint in cases:
        status, body = grant(util, sim, assertion)
        assert status == 400 and body["error"] == "invalid_grant" and hint in body["error_description"], hint
    status, body = grant(util, sim, make_jwt(claims(sim)), grant_type="client_credentials")
    assert status == 400 and body["error"] == "unsupported_grant_type"


def test_sdk_surfaces_a_rejected_grant(sim: SimulatorThread) -> None:
    info = service_account_info(sim.url("/vertex/oauth2/token"))
    info["client_email"] = "stranger@sandbox-project.iam.gserviceaccount.com"
    client = vertex_client(sim, service_account.Credentials.from_service_account_info(info, scopes=SCOPES))
    with client, pytest.raises(google.auth.exceptions.RefreshError) as err:
        client.models.generate_content(model=PRO, contents="x")
    assert "invalid_grant" in str(err.value)
