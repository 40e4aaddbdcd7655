"""Amazon Bedrock through the gateway: the openai SDK against mediagate, every Bedrock call SigV4-signed and
checked by the simulator (which answers AWS's 403 to a bad signature), the forced `bedrock/` prefix, Nova
Reel's job read back from its S3 bucket, and Bedrock's errors in the gateway's shape."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from mediagate import catalog
from mediagate.sandbox import video as sim_video
from mediagate.sandbox.testing import SimulatorThread
from tests.servers import GatewayThread

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")   # the SDK warns on any videos call


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="any", max_retries=0, timeout=60)


def image(item: Any) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
    im.load()
    return im


def test_nova_canvas_through_the_openai_sdk(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = client(gateway).images.generate(model="nova-canvas", prompt="a lighthouse at dusk", size="1792x1024", n=2,
                                          response_format="b64_json", extra_body={"quality": "premium", "seed": 9})
    assert [image(d).size for d in res.data] == [(1792, 1024)] * 2
    meta = (res.model_extra or {})["metadata"]
    assert meta["provider"] == "bedrock"
    assert meta["cost"] == pytest.approx(0.16)     # two premium images above 1024x1024
    sent = sim_clean.requests("bedrock")
    assert len(sent) == 1   # n=2 in one call: numberOfImages
    call = sent[0]
    assert call["path"] == "/bedrock/model/amazon.nova-canvas-v1:0/invoke"
    assert call["json"]["imageGenerationConfig"] == {"width": 1792, "height": 1024, "numberOfImages": 2,
                                                     "quality": "premium", "seed": 9}
    auth = call["headers"]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=sandbox/") and "/us-east-1/bedrock/aws4_request" in auth
    assert auth.split("SignedHeaders=")[1].split(",")[0] == "accept;content-type;host;x-amz-date;x-amz-security-token"


def test_titan_v2_snaps_to_its_size_table(gateway: GatewayThread) -> None:
    res = client(gateway).images.generate(model="titan-image-v2", prompt="a fox", size="1280x720", response_format="b64_json")
    assert image(res.data[0]).size == (1152, 640)   # nearest ratio in the table (1.8 vs 1.78)
    adjustments = (res.model_extra or {})["metadata"]["adjustments"]
    assert any(a["param"] == "size" and a["applied"] == "1152x640" for a in adjustments)


@pytest.mark.parametrize(("model", "upstream"), [("stable-image-ultra", "stability.stable-image-ultra-v1:1"),
                                                 ("sd3.5-large", "stability.sd3-5-large-v1:0"),
                                                 ("stable-image-core", "stability.stable-image-core-v1:1"),
                                                 ("nova-canvas", "amazon.nova-canvas-v1:0"),
                                                 ("titan-image-v2", "amazon.titan-image-generator-v2:0")])
def test_forced_bedrock_prefix(gateway: GatewayThread, sim_clean: SimulatorThread, model: str, upstream: str) -> None:
    res = client(gateway).images.generate(model=f"bedrock/{model}", prompt="a fox", size="1344x768",
                                          response_format="b64_json", extra_body={"output_format": "jpeg"})
    im = image(res.data[0])
    assert im.format == "JPEG" and f"{im.width}x{im.height}" == res.size
    assert (res.model_extra or {})["metadata"]["provider"] == "bedrock"
    assert [q["path"] for q in sim_clean.requests("bedrock")] == [f"/bedrock/model/{upstream}/invoke"]
    assert sim_clean.requests("stability") == []


def test_stability_on_bedrock_seed_and_filter(gateway: GatewayThread) -> None:
    c = client(gateway)
    res = c.images.generate(model="bedrock/sd3.5-large", prompt="a fox", response_format="b64_json", extra_body={"seed": 5})
    assert (res.model_extra or {})["metadata"]["upstream"] == [{"seed": 5}]
    with pytest.raises(openai.BadRequestError) as err:
        c.images.generate(model="bedrock/sd3.5-large", prompt="a fox [sim:safety]", response_format="b64_json")
    assert err.value.code == "content_policy_violation"


def test_bedrock_errors_in_the_gateway_shape(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as err:
        c.images.generate(model="nova-canvas", prompt="a fox [sim:prompt-blocked]")
    assert err.value.code == "content_policy_violation"
    sim_clean.inject("429", protocol="bedrock")
    with pytest.raises(openai.RateLimitError):
        c.images.generate(model="nova-canvas", prompt="a fox")


def test_a_wrong_secret_is_refused_by_the_simulator(sim: SimulatorThread, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator really checks the signature: credentials it does not know give AWS's 403, which the
    gateway reports as an upstream auth failure."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONG")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("BEDROCK_BASE_URL", sim.url("/bedrock"))
    with GatewayThread(None, tmp_path, sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", json={"model": "nova-canvas", "prompt": "a fox"}, timeout=30)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "all_providers_exhausted" and "security token included in the request is invalid" in error["message"]


def test_real_credentials_sign_for_the_configured_region(sim: SimulatorThread, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Off the sandbox: the environment's keys, session token and region sign the call (the simulator
    knows the key `sandbox`), to the operator's base URL."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok/en+1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("BEDROCK_BASE_URL", sim.url("/bedrock"))
    sim.reset()
    with GatewayThread(None, tmp_path, sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations",
                       json={"model": "nova-canvas", "prompt": "a fox", "response_format": "b64_json"}, timeout=30)
    assert r.status_code == 200, r.text
    headers = sim.requests("bedrock")[0]["headers"]
    assert "/eu-west-1/bedrock/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == "tok/en+1"


def wait(c: openai.OpenAI, video_id: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    v = c.videos.retrieve(video_id)
    while v.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.2)
        v = c.videos.retrieve(video_id)
    return v


def test_nova_reel_job_read_from_s3(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    c = client(gateway)
    created = c.videos.create(model="nova-reel", prompt="waves at dusk [sim:job=300]", seconds="6")  # type: ignore[arg-type]
    done = wait(c, created.id)
    assert done.status == "completed", done.error
    data = c.videos.download_content(created.id).read()
    info = sim_video.probe(data)
    assert (info.width, info.height) == (1280, 720) and abs(info.duration - 6) < 0.5
    assert (done.model_extra or {})["metadata"]["cost"] == pytest.approx(0.48)
    log = sim_clean.requests("bedrock")
    submit = log[0]
    assert submit["path"] == "/bedrock/async-invoke"
    assert submit["json"]["modelInput"]["taskType"] == "TEXT_VIDEO"
    assert submit["json"]["outputDataConfig"] == {"s3OutputDataConfig": {"s3Uri": "s3://mediagate-bedrock-output/videos"}}
    assert any(q["method"] == "GET" and q["path"].startswith("/bedrock/async-invoke/arn:aws:bedrock:") for q in log)


def test_nova_reel_failure_is_reported(gateway: GatewayThread) -> None:
    c = client(gateway)
    created = c.videos.create(model="nova-reel", prompt="waves [sim:job=100] [sim:safety]", seconds="6")  # type: ignore[arg-type]
    done = wait(c, created.id)
    assert done.status == "failed" and done.error is not None
    assert done.error.code == "content_policy_violation"


def test_every_bedrock_model_has_its_route() -> None:
    cat = catalog.load()
    on_bedrock = {m.id for m in cat.models.values() if any(r.provider.id == "bedrock" for r in m.routes)}
    assert {"nova-canvas", "titan-image-v2", "stable-image-ultra", "sd3.5-large", "stable-image-core", "nova-reel"} <= on_bedrock


def _png(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 90, 40)).save(buf, fmt)
    return buf.getvalue()


def test_nova_canvas_edit_is_an_image_variation(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    res = client(gateway).images.edit(model="nova-canvas", image=[("a.png", _png((800, 600)), "image/png"),
                                                                  ("b.jpg", _png((800, 600), "JPEG"), "image/jpeg")],
                                      prompt="in autumn colours", response_format="b64_json",
                                      extra_body={"similarity_strength": 0.6})
    assert image(res.data[0]).size == (816, 608)      # the references' 4:3, on Nova's grid of 16
    sent = sim_clean.requests("bedrock")[0]["json"]
    assert sent["taskType"] == "IMAGE_VARIATION"
    assert len(sent["imageVariationParams"]["images"]) == 2 and sent["imageVariationParams"]["similarityStrength"] == 0.6


def test_an_input_format_the_model_does_not_take_is_refused(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).images.edit(model="titan-image-v2", image=("a.webp", _png((512, 512), "WEBP"), "image/webp"),
                                    prompt="x")
    assert err.value.code == "invalid_image_format" and err.value.param == "image"
    assert sim_clean.requests("bedrock") == []




@pytest.mark.parametrize("provider", ["stability", "bedrock", "replicate", "fal"])
def test_sd35_large_on_every_route(gateway: GatewayThread, provider: str) -> None:
    """Every provider that serves SD3.5 Large answers the openai SDK through the gateway on its simulator."""
    res = client(gateway).images.generate(model=f"{provider}/sd3.5-large", prompt="a harbour", response_format="b64_json",
                                          extra_body={"aspect_ratio": "3:2"})
    im = image(res.data[0])
    assert f"{im.width}x{im.height}" == res.size and im.width > im.height
    assert (res.model_extra or {})["metadata"]["provider"] == provider


def test_a_bedrock_api_key_is_sent_as_bearer_unsigned(sim: SimulatorThread, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With only AWS_BEARER_TOKEN_BEDROCK set, calls carry the key and no SigV4 signature; with access keys
    too, SigV4 wins and the key is not sent."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "sandbox")
    monkeypatch.setenv("BEDROCK_BASE_URL", sim.url("/bedrock"))
    sim.reset()
    with GatewayThread(None, tmp_path / "a", sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations",
                       json={"model": "titan-image-v2", "prompt": "a fox", "response_format": "b64_json"}, timeout=30)
    assert r.status_code == 200, r.text
    headers = sim.requests("bedrock")[0]["headers"]
    assert headers["authorization"] == "Bearer sandbox" and "x-amz-date" not in headers
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sandbox")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    sim.reset()
    with GatewayThread(None, tmp_path / "b", sandbox="off") as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations",
                       json={"model": "titan-image-v2", "prompt": "a fox", "response_format": "b64_json"}, timeout=30)
    assert r.status_code == 200, r.text
    assert sim.requests("bedrock")[0]["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_aws_keys_alone_do_not_take_bedrock_off_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_* keys may be an S3-compatible media store's (compose.yaml's MinIO): with sandbox=auto Bedrock stays
    on its simulator until BEDROCK_REGION says it is meant, and that region wins over AWS_REGION."""
    from mediagate.config import Settings
    from mediagate.provider import compile_provider
    from mediagate.runtime import sandboxed
    import yaml
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "providers.d" / "bedrock.yaml").read_text())
    settings = Settings(media_dir=tmp_path / "m", state_dir=tmp_path / "s", sandbox="auto")
    env = {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio-secret", "AWS_REGION": "eu-west-1"}
    for name in ("BEDROCK_REGION", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    provider = compile_provider(spec, "bedrock.yaml", {**env})
    assert sandboxed(settings, provider)
    assert provider.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    monkeypatch.setenv("BEDROCK_REGION", "us-west-2")
    provider = compile_provider(spec, "bedrock.yaml", {**env, "BEDROCK_REGION": "us-west-2"})
    assert not sandboxed(settings, provider) and not provider.missing_secrets
    assert provider.base_url == "https://bedrock-runtime.us-west-2.amazonaws.com"
    assert provider.endpoints["s3"].base_url == "https://s3.us-west-2.amazonaws.com"


def test_a_mask_makes_the_edit_an_inpainting_with_amazons_mask_convention(gateway: GatewayThread,
                                                                         sim_clean: SimulatorThread) -> None:
    """The caller's OpenAI mask (transparent = edit) reaches Bedrock as a black-and-white PNG, black = edit."""
    mask = Image.new("RGBA", (512, 512), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 256, 512))           # the left half transparent: edit it
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    res = client(gateway).images.edit(model="nova-canvas", image=("a.png", _png((512, 512)), "image/png"),
                                      mask=("m.png", buf.getvalue(), "image/png"), prompt="a hat", response_format="b64_json")
    assert image(res.data[0]).size == (512, 512)
    sent = sim_clean.requests("bedrock")[0]["json"]
    assert sent["taskType"] == "INPAINTING" and "imageVariationParams" not in sent
    sent_mask = Image.open(io.BytesIO(base64.b64decode(sent["inPaintingParams"]["maskImage"])))
    assert sent_mask.convert("L").getpixel((10, 10)) == 0 and sent_mask.convert("L").getpixel((500, 10)) == 255


def test_a_mask_with_several_images_is_refused_not_dropped(gateway: GatewayThread, sim_clean: SimulatorThread) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(gateway).images.edit(model="titan-image-v2", image=[("a.png", _png((512, 512)), "image/png"),
                                                                   ("b.png", _png((512, 512)), "image/png")],
                                    mask=("m.png", _png((512, 512)), "image/png"), prompt="x")
    assert err.value.param == "image" and "at most 1" in str(err.value)
    assert sim_clean.requests("bedrock") == []
