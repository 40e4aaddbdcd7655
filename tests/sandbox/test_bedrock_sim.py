"""The Bedrock simulator, checked with AWS's own SDK: boto3's `bedrock-runtime` client (and its `s3` client
for the job's output) pointed at the simulator with `endpoint_url`. boto3 signs with botocore's SigV4, so
a request the simulator accepts proves its signature check agrees with AWS's reference signer."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from mediagate.sandbox import video
from mediagate.sandbox.testing import SimulatorThread

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, region_name="us-east-1")


def _client(sim: SimulatorThread, secret: str = "sandbox", service: str = "bedrock-runtime", path: str = "/bedrock") -> Any:
    return boto3.client(service, endpoint_url=sim.url(path), aws_access_key_id="sandbox",
                        aws_secret_access_key=secret, config=NO_RETRY)


def _image(b64: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im.load()
    return im


def test_nova_canvas_invoke_model(sim: SimulatorThread) -> None:
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a lighthouse", "negativeText": "fog"},
            "imageGenerationConfig": {"width": 1280, "height": 720, "numberOfImages": 2, "quality": "premium",
                                      "cfgScale": 7.0, "seed": 42}}
    resp = _client(sim).invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body),
                                     contentType="application/json", accept="application/json")
    out = json.loads(resp["body"].read())
    assert [(_image(b).format, _image(b).size) for b in out["images"]] == [("PNG", (1280, 720))] * 2


def test_titan_v2_sizes_are_its_table(sim: SimulatorThread) -> None:
    client = _client(sim)
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a fox"},
            "imageGenerationConfig": {"width": 1152, "height": 640, "numberOfImages": 1}}
    out = json.loads(client.invoke_model(modelId="amazon.titan-image-generator-v2:0", body=json.dumps(body))["body"].read())
    assert _image(out["images"][0]).size == (1152, 640)
    body["imageGenerationConfig"]["width"] = 1150
    with pytest.raises(ClientError) as err:
        client.invoke_model(modelId="amazon.titan-image-generator-v2:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_nova_canvas_refuses_a_size_past_its_limits(sim: SimulatorThread) -> None:
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a fox"},
            "imageGenerationConfig": {"width": 2048, "height": 2048}}   # 4,194,304 px: one past the limit
    with pytest.raises(ClientError) as err:
        _client(sim).invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("model", ["stability.sd3-5-large-v1:0", "stability.stable-image-ultra-v1:1",
                                   "stability.stable-image-core-v1:1"])
def test_stability_on_bedrock(sim: SimulatorThread, model: str) -> None:
    body = {"prompt": "a fox", "mode": "text-to-image", "aspect_ratio": "16:9", "output_format": "jpeg", "seed": 7}
    out = json.loads(_client(sim).invoke_model(modelId=model, body=json.dumps(body))["body"].read())
    assert out["seeds"] == [7] and out["finish_reasons"] == [None]
    im = _image(out["images"][0])
    assert (im.format, im.size) == ("JPEG", (1344, 768))


def test_a_wrong_secret_gets_aws_signature_error(sim: SimulatorThread) -> None:
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a fox"}}
    with pytest.raises(ClientError) as err:
        _client(sim, secret="not-the-secret").invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "signature we calculated does not match" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize(("fault", "code", "status"), [("429", "ThrottlingException", 429),
                                                      ("500", "InternalServerException", 500),
                                                      ("prompt-blocked", "ValidationException", 400),
                                                      ("safety", "ValidationException", 400)])
def test_faults_speak_bedrock_errors(sim: SimulatorThread, fault: str, code: str, status: int) -> None:
    sim.inject(fault, protocol="bedrock")
    body = {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a fox"}}
    with pytest.raises(ClientError) as err:
        _client(sim).invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
    assert (err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)


def test_nova_reel_async_invoke_to_s3(sim: SimulatorThread) -> None:
    sim.set_video_job_ms(200)
    client = _client(sim)
    started = client.start_async_invoke(
        modelId="amazon.nova-reel-v1:1", clientRequestToken="tok-1",
        modelInput={"taskType": "TEXT_VIDEO", "textToVideoParams": {"text": "waves at dusk"},
                    "videoGenerationConfig": {"durationSeconds": 6, "fps": 24, "dimension": "1280x720", "seed": 3}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://reels-bucket/out"}})
    arn = started["invocationArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:") and ":async-invoke/" in arn
    again = client.start_async_invoke(   # the same clientRequestToken is the same invocation
        modelId="amazon.nova-reel-v1:1", clientRequestToken="tok-1",
        modelInput={"taskType": "TEXT_VIDEO", "textToVideoParams": {"text": "waves at dusk"},
                    "videoGenerationConfig": {"durationSeconds": 6, "fps": 24, "dimension": "1280x720"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://reels-bucket/out"}})
    assert again["invocationArn"] == arn
    deadline = time.monotonic() + 20
    job = client.get_async_invoke(invocationArn=arn)
    while job["status"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get_async_invoke(invocationArn=arn)
    assert job["status"] == "Completed"
    uri = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=sim.url("/bedrock-s3"), aws_access_key_id="sandbox",
                      aws_secret_access_key="sandbox", config=Config(s3={"addressing_style": "path"}, region_name="us-east-1"))
    data = s3.get_object(Bucket=bucket, Key=f"{prefix}/output.mp4")["Body"].read()
    info = video.probe(data)
    assert (info.width, info.height) == (1280, 720) and abs(info.duration - 6) < 0.5


def test_nova_reel_failed_job(sim: SimulatorThread) -> None:
    sim.set_video_job_ms(50)
    client = _client(sim)
    arn = client.start_async_invoke(
        modelId="amazon.nova-reel-v1:0",
        modelInput={"taskType": "TEXT_VIDEO", "textToVideoParams": {"text": "waves [sim:fail]"},
                    "videoGenerationConfig": {"durationSeconds": 6}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://reels-bucket"}})["invocationArn"]
    time.sleep(0.2)
    job = client.get_async_invoke(invocationArn=arn)
    assert job["status"] == "Failed" and job["failureMessage"]


def test_image_variation_takes_png_or_jpeg_references(sim: SimulatorThread) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (640, 640), (10, 120, 30)).save(buf, "PNG")
    ref = base64.b64encode(buf.getvalue()).decode()
    body = {"taskType": "IMAGE_VARIATION", "imageVariationParams": {"text": "autumn", "images": [ref], "similarityStrength": 0.5},
            "imageGenerationConfig": {"width": 640, "height": 640, "numberOfImages": 1}}
    out = json.loads(_client(sim).invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))["body"].read())
    assert _image(out["images"][0]).size == (640, 640)
    buf = io.BytesIO()
    Image.new("RGB", (640, 640)).save(buf, "WEBP")
    body["imageVariationParams"]["images"] = [base64.b64encode(buf.getvalue()).decode()]
    with pytest.raises(ClientError) as err:
        _client(sim).invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"
