"""Media stores: shared media in a real S3-protocol server (moto, loopback), the persisted signing key, the disk cap."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import openai
import pytest

from mediagate.config import Settings
from mediagate.media import DiskBudget, LocalMediaStore, MediaConfigError, open_media
from mediagate.sandbox.testing import SimulatorThread
from tests.s3server import MotoServer
from tests.servers import GatewayThread

KEY = "shared-signing-key-for-tests"
pytestmark = pytest.mark.filterwarnings("ignore:The Sora API is scheduled:DeprecationWarning")


@pytest.fixture()
def bucket(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto.new_bucket()


def client(gw: GatewayThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url + "/v1", api_key="x", max_retries=0, timeout=60)


def url_image(gw: GatewayThread) -> str:
    url = client(gw).images.generate(model="gpt-image-1", prompt="x", response_format="url").data[0].url
    assert url is not None
    return url


def on(gw: GatewayThread, url: str) -> str:
    """The same media URL, asked of another gateway."""
    return gw.base_url + url[url.index("/v1/media/"):]


def wait_until(when: float, limit_s: float = 10) -> None:
    """Expiry is wall-clock time: wait for it (bounded)."""
    assert when - time.time() < limit_s
    while time.time() < when:
        time.sleep(0.05)


def test_url_minted_by_one_gateway_is_served_by_another_then_refused_everywhere_and_swept(
        sim: SimulatorThread, tmp_path: Path, moto: MotoServer, bucket: str) -> None:
    shared = {"media_url": f"s3://{bucket}/gw", "signing_key": KEY.encode(), "media_ttl_s": 2}
    with GatewayThread(sim.base_url, tmp_path / "b", **shared) as b, GatewayThread(sim.base_url, tmp_path / "c", **shared) as c:
        first, second = url_image(b), url_image(b)
        assert first.startswith(b.base_url)
        assert len([k for k in moto.keys(bucket) if k.startswith("gw/media/")]) == 2
        from_b, from_c = httpx.get(first), httpx.get(on(c, first))
        assert from_c.status_code == 200 and from_c.headers["content-type"] == "image/png"
        assert from_c.content == from_b.content and from_c.headers["content-length"] == str(len(from_b.content))
        assert not (tmp_path / "c" / "media").exists() or not any((tmp_path / "c" / "media").iterdir())
        wait_until(int(first.split("/v1/media/")[1].split("-")[0]) + 0.05)
        for url in (first, on(c, first)):
            late = httpx.get(url)
            assert late.status_code == 410 and late.json()["error"]["code"] == "media_expired"
        # `second` was never asked for: a sweep deletes it (this one, or an instance's own sweeper if it came first)
        asyncio.run(c.runtime.media.sweep())
        assert [k for k in moto.keys(bucket) if k.startswith("gw/media/")] == []
        assert httpx.get(on(c, second)).status_code == 410


def test_video_content_is_streamed_from_the_bucket(sim: SimulatorThread, tmp_path: Path, moto: MotoServer,
                                                   bucket: str) -> None:
    with GatewayThread(sim.base_url, tmp_path, media_url=f"s3://{bucket}/v", signing_key=KEY.encode()) as gw:
        c = client(gw)
        video = c.videos.create(model="sora-2", prompt="a paper boat [sim:job=200]", seconds="4", size="1280x720")
        deadline = time.monotonic() + 30
        while (v := c.videos.retrieve(video.id)).status in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert v.status == "completed"
        keys = moto.keys(bucket)
        assert len(keys) == 1 and keys[0].startswith("v/videos/") and keys[0].endswith(".mp4")
        data = c.videos.download_content(video.id).read()
        with av.open(io.BytesIO(data)) as container:
            assert container.streams.video[0].codec_context.width == 1280
        assert not (tmp_path / "media" / "videos").exists() or not any((tmp_path / "media" / "videos").iterdir())
        c.videos.delete(video.id)
        assert moto.keys(bucket) == []


def test_forged_signature_or_another_name_is_404(sim: SimulatorThread, tmp_path: Path, bucket: str) -> None:
    with GatewayThread(sim.base_url, tmp_path, media_url=f"s3://{bucket}", signing_key=KEY.encode()) as gw:
        url = url_image(gw)
        flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
        path, sig = url.split("?sig=")
        name = path.rsplit("/", 1)[1]
        other = name.split("-")[0] + "-" + "B" * 43 + ".png"
        signed_missing = f"{gw.base_url}/v1/media/{other}?sig={gw.runtime.media.sign(other)}"
        for bad in (flipped, f"{gw.base_url}/v1/media/{other}?sig={sig}", signed_missing, path):
            r = httpx.get(bad)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", bad
        assert httpx.get(url).status_code == 200


def test_presigned_links_download_from_the_bucket(sim: SimulatorThread, tmp_path: Path, moto: MotoServer,
                                                 bucket: str) -> None:
    with GatewayThread(sim.base_url, tmp_path, media_url=f"s3://{bucket}/p", signing_key=KEY.encode(),
                       media_links="presigned") as gw:
        url = url_image(gw)
        assert url.startswith(f"{moto.endpoint}/{bucket}/p/media/") and "X-Amz-Signature=" in url
        r = httpx.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert "X-Amz-Expires=3600" in url


def test_shared_media_without_a_signing_key_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(media_url="s3://some-bucket/x", state_dir=tmp_path / "state", media_dir=tmp_path / "media")
    with pytest.raises(MediaConfigError) as exc:
        open_media(settings, 60)
    assert "MEDIAGATE_SIGNING_KEY" in exc.value.message
    env = {**os.environ, "MEDIAGATE_MEDIA_URL": "s3://some-bucket/x", "MEDIAGATE_STATE_DIR": str(tmp_path / "state"),
           "MEDIAGATE_PORT": "0", "MEDIAGATE_SANDBOX": "off"}
    env.pop("MEDIAGATE_SIGNING_KEY", None)
    proc = subprocess.run([str(Path(sys.executable).with_name("mediagate")), "serve"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "MEDIAGATE_SIGNING_KEY" in proc.stderr and "same key" in proc.stderr and "Traceback" not in proc.stderr


def test_presigned_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(MediaConfigError, match="presigned"):
        open_media(Settings(media_links="presigned", state_dir=tmp_path, media_dir=tmp_path / "m"), 60)


def test_signing_key_is_persisted_so_urls_survive_a_restart(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path) as first:
        url = url_image(first)
        assert httpx.get(url).status_code == 200
    key_file = tmp_path / "state" / "media_signing_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with GatewayThread(sim.base_url, tmp_path) as second:
        again = httpx.get(on(second, url))
        assert again.status_code == 200 and again.content[:4] == b"\x89PNG"


_CHILD = """
import sys, time
from pathlib import Path
from mediagate.media import stored_key
go = Path(sys.argv[2])
Path(sys.argv[3]).touch()
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
print(stored_key(Path(sys.argv[1])).decode())
"""


def test_workers_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    state, go = tmp_path / "state", tmp_path / "go"
    state.mkdir()
    ready = [tmp_path / f"ready{i}" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(state / "k"), str(go), str(r)], stdout=subprocess.PIPE,
                              text=True) for r in ready]
    deadline = time.monotonic() + 30
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:   # all at the starting line
        time.sleep(0.01)
    go.touch()
    keys = {p.communicate(timeout=30)[0].strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in state.iterdir()] == ["k"]         # no temp file left behind


def test_disk_cap_at_the_limit_and_one_byte_over(tmp_path: Path) -> None:
    budget = DiskBudget(100)
    live = LocalMediaStore(tmp_path / "live", 3600, b"k", budget)
    assert asyncio.run(live.put(b"x" * 100, "png"))                  # exactly at the limit
    with pytest.raises(Exception) as exc:
        asyncio.run(live.put(b"y", "png"))                            # limit + 1
    assert getattr(exc.value, "status", None) == 507 and exc.value.code == "insufficient_storage"  # type: ignore[attr-defined]
    assert len(list((tmp_path / "live").iterdir())) == 1             # nothing half-written left


def test_disk_cap_deletes_expired_files_oldest_first_then_refuses(tmp_path: Path) -> None:
    budget = DiskBudget(100)
    older = LocalMediaStore(tmp_path / "older", -20, b"k", budget)   # already expired when written
    newer = LocalMediaStore(tmp_path / "newer", -10, b"k", budget)
    live = LocalMediaStore(tmp_path / "live", 3600, b"k", budget)
    asyncio.run(older.put(b"o" * 30, "png"))
    asyncio.run(newer.put(b"n" * 30, "png"))
    asyncio.run(live.put(b"l" * 40, "png"))                          # 100 of 100
    asyncio.run(live.put(b"m" * 30, "png"))                          # evicts the oldest expired file only
    assert list((tmp_path / "older").iterdir()) == [] and len(list((tmp_path / "newer").iterdir())) == 1
    asyncio.run(live.put(b"p" * 30, "png"))                          # evicts the other expired file
    assert list((tmp_path / "newer").iterdir()) == []
    with pytest.raises(Exception) as exc:                           # 100 live bytes: nothing left to evict
        asyncio.run(live.put(b"q", "png"))
    assert exc.value.code == "insufficient_storage"  # type: ignore[attr-defined]
    assert len(list((tmp_path / "live").iterdir())) == 3


def test_full_disk_refuses_url_responses_with_507_and_keeps_serving(sim: SimulatorThread, tmp_path: Path) -> None:
    with GatewayThread(sim.base_url, tmp_path, media_max_bytes=1000) as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                       json={"model": "gpt-image-1", "prompt": "x", "response_format": "url"})
        assert r.status_code == 507
        assert r.json()["error"] == {"message": r.json()["error"]["message"], "type": "server_error", "param": None,
                                     "code": "insufficient_storage"}
        b64 = client(gw).images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
        assert b64.data[0].b64_json
        assert httpx.get(gw.base_url + "/healthz").status_code == 200
