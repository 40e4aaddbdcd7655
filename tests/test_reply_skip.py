"""`reply_skip`: top-level members of a provider's JSON replies dropped as the bytes arrive (engine/replyskip.py),
so a reply that echoes the request's input images is never held or parsed."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import httpx
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mediagate import upstream
from mediagate.provider import ProviderSpecError, compile_provider
from mediagate.replyskip import ReplySkipper
from tests.servers import GatewayThread, Scripted, ScriptedThread

ROOT = Path(__file__).resolve().parent.parent
REPLICATE = yaml.safe_load((ROOT / "providers.d" / "replicate.yaml").read_text())
SKIP = frozenset({"input"})


def skipped(raw: bytes, cuts: list[int], names: frozenset[str] = SKIP) -> bytes:
    skipper, out, start = ReplySkipper(names), b"", 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(raw))) + [len(raw)]:
        out += skipper.feed(raw[start:cut])
        start = cut
    return out


# ---------------------------------------------------------------- the scanner agrees with a parser

_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(alphabet=st.sampled_from('ab"\\{}[],: \n\té\u2028'), max_size=12)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(["input", "a", "in\"put", "{", "output"]), inner, max_size=4),
                       max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["input", "status", "inputs", "in\\put", "", "urls", "x,y}"]), _values,
                           max_size=5) | _values,
       cuts=st.lists(st.integers(0, 400), max_size=30), indent=st.booleans())
def test_skipped_members_read_as_null_and_nothing_else_changes(doc: Any, cuts: list[int], indent: bool) -> None:
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0)
    want = {k: (None if k in SKIP else v) for k, v in doc.items()} if isinstance(doc, dict) else doc
    assert orjson.loads(skipped(raw, cuts)) == want


def test_only_the_top_level_member_is_skipped_in_every_split() -> None:
    raw = b'{"id": "p1", "input": {"images": ["data:image/png;base64,AAAA\\"}]", {"input": 1}], "n": [1, {"a": "}"}]},' \
          b' "status": "succeeded", "output": {"input": "kept"}, "input2": "kept"}'
    for cut in range(len(raw) + 1):
        out = skipped(raw, [cut, cut + 1, cut + 7])
        assert orjson.loads(out) == {"id": "p1", "input": None, "status": "succeeded", "output": {"input": "kept"},
                                     "input2": "kept"}, cut
        assert b"base64" not in out


def test_malformed_replies_stay_malformed() -> None:
    for raw in (b'{"input": "unterminated', b'{"input": {"a": 1}', b'{"input" 1}', b'{"status": "x", "input": '):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(skipped(raw, [3, 9]))


# ---------------------------------------------------------------- reading a reply over HTTP

@pytest.fixture()
def script() -> Iterator[Scripted]:
    with ScriptedThread() as s:
        yield s


async def _read(url: str, skip: frozenset[str]) -> upstream.UpstreamReply:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await upstream.read_reply(resp, skip)


def test_an_echoed_input_is_dropped_as_it_arrives(script: Scripted) -> None:
    echo = "data:image/png;base64," + "A" * (8 * 1024 * 1024)
    prediction = {"id": "p1", "status": "succeeded", "input": {"prompt": "x", "input_images": [echo, echo]},
                  "output": "https://replicate.delivery/x.png"}
    script.replies += [{"json": prediction}, {"json": prediction}, {"file": "png,64x64"}]
    kept = asyncio.run(_read(script.base_url + "/p", SKIP))
    assert kept.json == {**prediction, "input": None}
    assert len(kept.body) < 200                                        # 16 MB arrived; what was held is the rest
    whole = asyncio.run(_read(script.base_url + "/p", frozenset()))
    assert whole.json == prediction and len(whole.body) > 16 * 1024 * 1024
    image = asyncio.run(_read(script.base_url + "/f", SKIP))           # a reply that is not JSON is never cut
    assert image.body.startswith(b"\x89PNG") and image.json is None


def test_a_job_whose_every_reply_echoes_its_input_is_served(script: Scripted, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped Replicate spec over a scripted Replicate whose create and poll replies each echo 3 MB of
    input, with the reply cap lowered to 1 MiB: served only because the echo is never held."""
    monkeypatch.setattr(upstream, "MAX_UPSTREAM_BODY_BYTES", 1024 * 1024)
    echo = {"prompt": "x", "input_images": ["data:image/png;base64," + "B" * (3 * 1024 * 1024)]}

    def prediction(status: str, **more: Any) -> dict[str, Any]:
        return {"json": {"id": "p1", "status": status, "input": echo, **more,
                         "urls": {"get": "$base/replicate/v1/predictions/p1",
                                  "cancel": "$base/replicate/v1/predictions/p1/cancel"}}}

    script.replies += [prediction("starting"), prediction("processing"),
                       prediction("succeeded", output="$url(png,64x64)")]
    with GatewayThread(script.base_url, tmp_path) as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                       json={"model": "replicate/flux.2-pro", "prompt": "a harbour", "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    assert [q["method"] for q in script.requests[:3]] == ["POST", "GET", "GET"]   # created, then polled twice

    script.requests.clear()
    script.replies += [prediction("starting")]
    plain = copy.deepcopy(REPLICATE)
    del plain["operations"]["generate"]["reply_skip"]
    root = tmp_path / "specs" / "providers.d"
    root.mkdir(parents=True)
    (root / "replicate.yaml").write_text(yaml.safe_dump(plain))
    with GatewayThread(script.base_url, tmp_path / "plain", [ROOT, root.parent]) as gw:
        r = httpx.post(gw.base_url + "/v1/images/generations", timeout=60,
                       json={"model": "replicate/flux.2-pro", "prompt": "a harbour"})
    assert r.status_code == 502 and "larger than" in r.text                       # without it: refused, as before


# ---------------------------------------------------------------- the spec

def test_a_path_that_reads_a_skipped_member_is_refused_at_load() -> None:
    op = compile_provider(REPLICATE, "replicate.yaml", {}).operations["generate"]
    assert op.reply_skip == SKIP and op.job is not None and op.job.reply_skip == SKIP
    reads = copy.deepcopy(REPLICATE)
    reads["operations"]["generate"]["async"]["done_when"] = "status == 'succeeded' && input.prompt"
    with pytest.raises(ProviderSpecError, match=r"generate\.reply_skip: input is read by a path"):
        compile_provider(reads, "replicate.yaml", {})
