"""The miner API as validators meet it: a real uvicorn server process, a real GPU worker,
real Redis, the LocalChain in the database, and bittensor's own btauth/1 signing."""

import base64
import json
import threading
import time

import bittensor as bt
import httpx
import pytest

from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.protocol import media
from app.protocol.client import MinerClient, MinerError

from ..conftest import free_port
from ..helpers.commands import in_process_hash
from ..helpers.small_requests import noise_image, small_request

pytestmark = pytest.mark.slow

MINER_ENV = {"SEEDGRID_TOTAL_VOLUME": "8", "SEEDGRID_MAX_CONCURRENT_REQUESTS": "1", "SEEDGRID_METAGRAPH_TTL": "0.5"}


@pytest.fixture(scope="module")
def net(settings, database, module_processes):
    """A subnet with a miner, two validators (20K and 1M stake), a low-stake and an unregistered key."""
    chain = LocalChain(database, settings.netuid)
    chain.init(block_time=0.5)
    wallets = {}
    for name, stake in (("miner", 0), ("small", 20_000), ("big", 1_000_000), ("low", 100), ("stranger", None)):
        w, _ = create_wallet(settings.wallets_dir, "test", name)
        wallets[name] = w
        if stake is not None:
            chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
            chain.set_stake(w.hotkey.ss58_address, stake)
    worker = module_processes("--model", "RealisticVision", worker=True)
    port = free_port()
    server = module_processes("miner", "serve", "--model", "RealisticVision", "--wallet", "test", "--hotkey", "miner",
                              "--port", str(port), env=MINER_ENV)
    from app.celery_app import celery_app

    worker.wait_ready(celery_app)
    url = f"http://127.0.0.1:{port}"
    server.wait_http(url + "/healthz")
    return {"url": url, "miner": wallets["miner"].hotkey.ss58_address, "wallets": wallets, "chain": chain,
            "server": server}


def client(net, who):
    return MinerClient(net["wallets"][who], timeout=60)


def raw_post(net, body: bytes, headers: dict, path="/v1/generate"):
    return httpx.post(net["url"] + path, content=body, headers={**headers, "Content-Type": "application/json"},
                      timeout=60)


def signed(net, who, body: bytes, **kw):
    return bt.http_auth.sign(net["wallets"][who], method="POST", path="/v1/generate", body=body,
                             receiver_ss58=kw.pop("receiver", net["miner"]), **kw)


def test_signed_request_returns_the_in_process_image(settings, net):
    raw = small_request("RealisticVision", seed=21)
    out = client(net, "big").generate(net["url"], net["miner"], raw)
    assert out["pixel_sha256"] == in_process_hash(settings, raw)
    pixels = media.decode(base64.b64decode(out["data"]), out["media_type"])
    assert media.pixel_sha256(pixels) == out["pixel_sha256"], "the hash is computable from the returned bytes"
    assert out["environment"]["threads"] == settings.threads
    assert {"queued_ms", "generate_ms"} <= set(out["timings"])


@pytest.mark.parametrize("attack", ["unsigned", "tampered", "replayed", "stale", "wrong_receiver", "bad_signature"])
def test_auth_failures_are_401(net, attack):
    body = json.dumps(small_request("RealisticVision")).encode()
    headers = signed(net, "big", body)
    if attack == "unsigned":
        headers = {}
    elif attack == "tampered":
        body = body.replace(b"red fox", b"red cat")
    elif attack == "replayed":
        assert raw_post(net, body, headers).status_code == 200
    elif attack == "stale":
        headers = signed(net, "big", body, nonce_ns=time.time_ns() - 60 * 10**9)
    elif attack == "wrong_receiver":
        headers = signed(net, "big", body, receiver=net["wallets"]["small"].hotkey.ss58_address)
    elif attack == "bad_signature":
        headers = {**headers, "X-Bittensor-Signature": "0x" + "00" * 64}
    resp = raw_post(net, body, headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "unauthorized" and resp.json()["detail"]


@pytest.mark.parametrize("who, error", [("stranger", "not_registered"), ("low", "insufficient_stake")])
def test_blacklisted_callers_are_403(net, who, error):
    with pytest.raises(MinerError) as err:
        client(net, who).generate(net["url"], net["miner"], small_request("RealisticVision"))
    assert err.value.status == 403 and err.value.error == error


@pytest.mark.parametrize("change, field", [({"params": {"steps": 51}}, "params.steps"),
                                          ({"params": {"width": 300}}, "params.width"),
                                          ({"model": "DreamShaper"}, "model"),
                                          ({"prompt": ""}, "prompt"),
                                          ({"seed": -5}, "seed")])
def test_bad_parameters_are_400_naming_the_field(net, change, field):
    raw = {**small_request("RealisticVision"), **change}
    with pytest.raises(MinerError) as err:
        client(net, "big").generate(net["url"], net["miner"], raw)
    assert err.value.status == 400 and err.value.field == field


def test_token_limit_is_enforced_by_the_worker_and_named(net):
    raw = {**small_request("RealisticVision"), "prompt": " ".join(["castle"] * 90)}
    with pytest.raises(MinerError) as err:
        client(net, "big").generate(net["url"], net["miner"], raw)
    assert err.value.status == 400 and err.value.field == "prompt"


def test_oversized_body_is_413(net):
    body = json.dumps({**small_request("RealisticVision"), "prompt": "x" * 70_000}).encode()
    resp = raw_post(net, body, signed(net, "big", body))
    assert resp.status_code == 413
    assert "a txt2img request's body is at most 65,536 bytes" in resp.json()["detail"], resp.text
    assert "only controlnet, img2img requests carry an image" in resp.json()["detail"]


def test_the_body_cap_is_per_pipeline_and_an_image_request_is_served_by_the_gpu_worker(settings, net):
    raw = {**small_request("RealisticVision", seed=5), "pipeline": "img2img", "init_image": noise_image(),
           "strength": 0.75}
    assert len(json.dumps(raw)) > 200_000, "past the text-only cap"
    out = client(net, "big").generate(net["url"], net["miner"], raw)
    assert out["pixel_sha256"] == in_process_hash(settings, raw), "reproduced in another process"
    info = client(net, "small").info(net["url"], net["miner"])
    assert info["pipelines"] == ["txt2img", "img2img", "controlnet"]
    assert info["body_caps"]["txt2img"] == 65_536 and info["body_caps"]["img2img"] > 8 * 1024 * 1024
    assert info["max_body_bytes"] == info["body_caps"]["img2img"]


def test_info_publishes_the_quota_split(net):
    info = client(net, "small").info(net["url"], net["miner"])
    small, big = (net["wallets"][w].hotkey.ss58_address for w in ("small", "big"))
    assert info["volume_per_validator"] == {small: 3, big: 7}, "volume 8 split by stake^1.03, minimum 3"
    assert info["model"] == "RealisticVision" and info["max_concurrent"] == 1
    assert info["environment"]["torch"].startswith("2.13.0")


def test_quota_exhausted_is_429_with_retry_after(net):
    c = client(net, "small")  # quota 3 per window
    for i in range(3):
        c.generate(net["url"], net["miner"], small_request("RealisticVision", seed=100 + i, steps=2))
    with pytest.raises(MinerError) as err:
        c.generate(net["url"], net["miner"], small_request("RealisticVision", seed=200, steps=2))
    assert err.value.status == 429 and err.value.error == "quota_exhausted"
    assert 0 < err.value.retry_after <= 600


def test_concurrency_limit_is_429(net):
    results = {}

    def slow():
        try:
            results["slow"] = client(net, "big").generate(
                net["url"], net["miner"], small_request("RealisticVision", seed=300, steps=40, width=512, height=512))
        except MinerError as exc:
            results["slow"] = exc

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.6)  # the slow request now holds the only slot
    with pytest.raises(MinerError) as err:
        client(net, "big").generate(net["url"], net["miner"], small_request("RealisticVision", seed=301))
    t.join(60)
    assert err.value.status == 429 and err.value.error == "too_many_concurrent" and err.value.retry_after
    assert isinstance(results["slow"], dict), results["slow"]


def test_no_worker_is_504_within_the_timeout(settings, net, module_processes):
    port = free_port()
    server = module_processes("miner", "serve", "--model", "DreamShaper", "--wallet", "test", "--hotkey", "miner",
                              "--port", str(port), "--no-announce", env={"SEEDGRID_TIMEOUT_SCALE": "0.1"})
    server.wait_http(f"http://127.0.0.1:{port}/healthz")
    t0 = time.monotonic()
    with pytest.raises(MinerError) as err:
        client(net, "big").generate(f"http://127.0.0.1:{port}", net["miner"], small_request("DreamShaper"))
    elapsed = time.monotonic() - t0
    from app.celery_app import celery_app

    celery_app.control.purge()
    assert err.value.status == 504 and "seedgrid worker gpu --model DreamShaper" in err.value.detail
    assert 1.2 <= elapsed < 5, elapsed


def test_healthz_and_openapi(net):
    assert httpx.get(net["url"] + "/healthz").json()["model"] == "RealisticVision"
    doc = httpx.get(net["url"] + "/openapi.json").json()
    assert "/v1/generate" in doc["paths"] and "/v1/info" in doc["paths"]


def test_unknown_routes_and_methods_answer_the_json_error_body(net):
    missing = httpx.get(net["url"] + "/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found", missing.text
    assert "/v1/nothing-here" in missing.json()["detail"]
    wrong = httpx.delete(net["url"] + "/v1/generate")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed", wrong.text
    assert "DELETE" in wrong.json()["detail"]


def test_info_answers_registered_callers_only(net):
    with pytest.raises(MinerError) as err:
        client(net, "stranger").info(net["url"], net["miner"])
    assert err.value.status == 403 and err.value.error == "not_registered"


def test_healthz_reports_its_dependencies(net):
    body = httpx.get(net["url"] + "/healthz", timeout=10).json()
    assert body["status"] == "ok" and body["dependencies"] == {"redis": "ok", "gpu_worker_seen": True}


@pytest.mark.parametrize("body, content_type, status, field", [
    (json.dumps({**small_request("RealisticVision"), "params": {"scheduler": ["euler"]}}), "application/json", 400,
     "params.scheduler"),
    (json.dumps({**small_request("RealisticVision"), "params": {"scheduler": {"a": 1}}}), "application/json", 400,
     "params.scheduler"),
    ('{"model": "RealisticVision", "prompt": "a \\ud800 fox", "seed": 1}', "application/json", 400, "prompt"),
    ("[" * 1000 + "]" * 1000, "application/json", 400, "body"),
    ('{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}', "application/json", 400, "body"),
    (json.dumps(small_request("RealisticVision")), "text/plain", 415, None),
])
def test_malformed_input_is_a_4xx_never_a_500(net, body, content_type, status, field):
    raw = body.encode()
    headers = {**signed(net, "big", raw), "Content-Type": content_type}
    resp = httpx.post(net["url"] + "/v1/generate", content=raw, headers=headers, timeout=60)
    assert resp.status_code == status, resp.text
    assert resp.json().get("field") == field
