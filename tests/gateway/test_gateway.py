"""The gateway on real processes: `seedgrid gateway serve`, the validator's I/O worker and GPU worker,
three miner APIs (two honest, one cheating) over a miner GPU worker, hostile fake miners, the real
Redis, the database and the LocalChain. Every delivered job is sampled here (p = 1)."""

import base64
import json
import os
import random
import signal
import time

import httpx
import pytest
from sqlalchemy import select

from app import migrations
from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.gateway import jobs, keys, runner
from app.models import Challenge, Job, MinerState, Outcome, Response
from app.protocol import media
from app.protocol.request import parse_request
from app.validator import records, rounds

from ..conftest import ROOT, free_port
from ..helpers.gateway import api, wait_verdict
from ..helpers.small_requests import noise_image

pytestmark = pytest.mark.slow

NETUID = 6
ENV = {"SEEDGRID_NETUID": str(NETUID), "SEEDGRID_VALIDATOR_WALLET": "gw", "SEEDGRID_VALIDATOR_HOTKEY": "validator",
       "SEEDGRID_GATEWAY_SAMPLE_RATE": "1", "SEEDGRID_GATEWAY_EXPLORATION": "0", "SEEDGRID_METAGRAPH_TTL": "0.5",
       "SEEDGRID_TOTAL_VOLUME": "1000", "SEEDGRID_TIMEOUT_SCALE": "2"}
SMALL = {"steps": 2, "width": 256, "height": 256}
MINERS = {"honest1": None, "honest2": None, "cheater": "wrong_seed"}


@pytest.fixture(scope="module")
def grid(settings, database, module_processes, redis_url):
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)  # this process reads the same settings as the grid's processes
    from app.config import get_settings
    from app.tasks import validator as validator_tasks

    get_settings.cache_clear()
    validator_tasks.validator.cache_clear()
    fake = None
    try:
        grid = _start(get_settings(), database, module_processes)
        fake = grid["fake"]
        yield grid
    finally:
        if fake is not None:
            fake.kill()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        get_settings.cache_clear()
        validator_tasks.validator.cache_clear()


def _start(settings, database, module_processes):
    import subprocess
    import sys

    from app.celery_app import celery_app
    from app.tasks.validator import validator

    migrations.upgrade(database)
    chain = LocalChain(database, NETUID)
    chain.init(block_time=0.5)
    hotkeys, uids = {}, {}
    for name in ("validator", *MINERS, "hostile_json", "hostile_silent", "down"):
        w, _ = create_wallet(settings.wallets_dir, "gw", name)
        hotkeys[name] = w.hotkey.ss58_address
        uids[name] = chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
    chain.set_stake(hotkeys["validator"], 1_000_000)
    worker = module_processes("--model", "RealisticVision", worker=True, env=ENV)
    ports = {}
    for name, cheat in MINERS.items():
        ports[name] = free_port()
        module_processes("miner", "serve", "--model", "RealisticVision", "--wallet", "gw", "--hotkey", name,
                         "--port", str(ports[name]), *(["--cheat", cheat] if cheat else []), env=ENV)
    io = module_processes("worker", "io", "--name", "gw", env=ENV)
    vgpu = module_processes("worker", "gpu", "--role", "validator", "--model", "RealisticVision", "--name", "gw",
                            env=ENV)
    gateway_port = free_port()
    gateway = module_processes("gateway", "serve", "--port", str(gateway_port), env=ENV)
    hostile = {"hostile_json": free_port(), "hostile_silent": free_port()}
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.hostile_miner",
                             json.dumps({hostile["hostile_json"]: "not_json", hostile["hostile_silent"]: "silent"})],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert fake.stdout.readline().strip() == "ready"
    worker.wait_ready(celery_app)
    url = f"http://127.0.0.1:{gateway_port}"
    gateway.wait_http(url + "/healthz")
    v = validator()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the miner APIs announce themselves, then answer /v1/info
        if rounds.sync_miners(v)["reachable"] == len(MINERS):
            break
        time.sleep(0.5)
    with v.sessions() as s:
        for name, port in {**hostile, "down": free_port()}.items():  # unreachable until a test wants them
            records.upsert_miner(s, hotkey=hotkeys[name], uid=uids[name], default_tier="Bronze",
                                 model="RealisticVision", axon=f"127.0.0.1:{port}", reachable=False, quota=100)
        s.get(MinerState, hotkeys["cheater"]).reachable = False
    with v.sessions() as s:
        key_a = keys.create_key(s, name="gw-a", rate_per_minute=1000, daily_quota=100_000)[1]
        key_b = keys.create_key(s, name="gw-b", rate_per_minute=1000, daily_quota=100_000)[1]
        key_slow = keys.create_key(s, name="gw-slow", rate_per_minute=2, daily_quota=100)[1]
    return {"url": url, "v": v, "hotkeys": hotkeys, "key": key_a, "other_key": key_b, "slow_key": key_slow,
            "gateway": gateway, "io": io, "vgpu": vgpu, "processes": module_processes, "fake": fake}


ALL = (*MINERS, "hostile_json", "hostile_silent", "down")


def use_miners(grid, **states):
    """Only the named miners are reachable, each with its (score, total_successes), all Bronze (an
    epoch's rollover during earlier tests may have moved one); counters reset.
    Jobs of earlier tests finish and their sampled verdicts settle first, so none of their
    attempts or outcomes lands on this test's counters."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with grid["v"].sessions() as s:
            running = s.scalar(select(Job.id).where(Job.status.in_(("queued", "running"))).limit(1))
            unjudged = s.scalar(select(Response.id).join(Challenge, Challenge.id == Response.challenge_id).where(
                Challenge.kind == "inference", Challenge.status.in_(("open", "reproduced")),
                Response.status == "answered", Response.verdict_rung.is_(None)).limit(1))
        if not running and not unjudged:
            break
        time.sleep(0.5)
    with grid["v"].sessions() as s:
        for name in ALL:
            m = s.get(MinerState, grid["hotkeys"][name])
            m.reachable = name in states
            m.score, m.total_successes = states.get(name, (0.3, 10))
            m.tier = "Bronze"
            m.interval_attempts = m.interval_request_successes = m.interval_verified = m.interval_failed = 0


def honest_only(grid):
    use_miners(grid, honest1=(0.3, 10), honest2=(0.3, 10))


def job_status(grid, job_id) -> str:
    with grid["v"].sessions() as s:
        return s.get(Job, job_id).status


def test_a_job_is_done_with_the_miners_bytes_and_verified(grid):
    honest_only(grid)
    with api(grid) as c:
        r = c.post("/v1/jobs?wait=60", json={"model": "RealisticVision", "prompt": "a red circle", "params": SMALL})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "done" and job["result"]["media_type"] == "image/png", job
        data = c.get(f"/v1/jobs/{job['id']}/result")
        again = c.get(f"/v1/jobs/{job['id']}").json()
    assert {**job, "verification": None} == {**again, "verification": None}, "the delivery hint's view is the row's"
    assert data.headers["content-type"] == "image/png"
    digest = media.pixel_sha256(media.decode(data.content, "image/png"))
    with grid["v"].sessions() as s:
        delivered = s.scalar(select(Response).where(Response.challenge_id == job["id"], Response.status == "answered"))
        assert digest == job["result"]["pixel_sha256"] == delivered.claimed_sha256, "the miner's own pixels"
    [attempt] = job["attempts"]
    assert attempt["status"] == "answered" and attempt["latency_s"] > 0
    assert "kind" not in job["request"] and isinstance(job["request"]["seed"], int), "a seed is drawn when absent"
    verified = wait_verdict(grid, job["id"])
    assert verified["verification"] == {"sampled": True, "verdict": "exact",
                                        "reason": "pixel hash equals the reproduction's", "detail": None}, verified


def test_events_arrive_in_order_until_the_verdict_settles(grid):
    from app.gateway.client import GatewayClient

    honest_only(grid)
    client = GatewayClient(grid["url"], grid["key"])
    job = client.submit({"model": "RealisticVision", "prompt": "three yellow squares", "params": SMALL})
    events = list(client.events(job["id"], timeout=120))
    order = ["queued", "running", "done"]
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "done" and statuses == sorted(statuses, key=order.index), statuses
    assert events[-1]["verification"]["verdict"] == "exact"
    assert len({json.dumps(e, sort_keys=True) for e in events}) == len(events), "one event per change"


def test_idempotency_returns_the_same_job_and_cancel_stops_one(grid):
    honest_only(grid)
    body = {"model": "RealisticVision", "prompt": "a green triangle", "params": SMALL}
    with api(grid) as c:
        first = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-17"}).json()
        again = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-17"}).json()
        assert again["id"] == first["id"]
        other = c.post("/v1/jobs", json={**body, "prompt": "a blue square"}, headers={"Idempotency-Key": "order-17"})
        assert other.status_code == 409 and other.json()["field"] == "Idempotency-Key"
        slow = c.post("/v1/jobs", json={**body, "params": {"steps": 30, "width": 512, "height": 512}}).json()
        cancelled = c.delete(f"/v1/jobs/{slow['id']}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        assert c.delete(f"/v1/jobs/{slow['id']}").status_code == 409
        assert c.get(f"/v1/jobs/{slow['id']}/result").status_code == 409
    with grid["v"].sessions() as s:
        assert len(list(s.scalars(select(Job).where(Job.idempotency_key == "order-17")))) == 1


def test_limits_and_bad_input_are_named_4xx(grid):
    honest_only(grid)
    body = {"model": "RealisticVision", "prompt": "a red circle", "params": SMALL}
    with httpx.Client(base_url=grid["url"], timeout=30) as anon:
        assert anon.post("/v1/jobs", json=body).status_code == 401
        assert anon.post("/v1/jobs", json=body, headers={"Authorization": "Bearer sg_nope"}).status_code == 401
        assert anon.get("/v1/models").status_code == 401
    with api(grid) as c:
        mine = c.post("/v1/jobs", json=body).json()
        assert c.post("/v1/jobs", content=b"x" * 70_000, headers={"Content-Type": "application/json"}).status_code == 413
        long = c.post("/v1/jobs", json={**body, "prompt": "x" * 70_000})
        assert long.status_code == 413 and "a txt2img request's body is at most" in long.json()["detail"], long.text
        conditioned = c.post("/v1/jobs", json={**body, "pipeline": "img2img", "init_image": noise_image()})
        assert conditioned.status_code == 202, "an image-carrying job may be larger than a text-only one"
        shown = conditioned.json()["request"]["init_image"]
        assert shown.startswith("sha256:") and len(shown) < 100, "a job's view never echoes its image"
        c.delete(f"/v1/jobs/{conditioned.json()['id']}")
        assert c.post("/v1/jobs", content=b"model=x", headers={"Content-Type": "text/plain"}).status_code == 415
        cases = [({**body, "model": "Nope"}, "model"), ({**body, "params": {"scheduler": ["a"]}}, "params.scheduler"),
                 ({**body, "seed": "x"}, "seed"), ({**body, "prompt": 5}, "prompt"), ({**body, "kind": "challenge"},
                 "kind"), ([1, 2], "body"), ({**body, "params": {"steps": 500}}, "params.steps")]
        for bad, field in cases:
            r = c.post("/v1/jobs", json=bad)
            assert r.status_code == 400 and r.json()["field"] == field, (bad, r.text)
        assert "RealisticVision" in c.post("/v1/jobs", json={**body, "model": "Nope"}).json()["detail"]
        assert c.post("/v1/jobs?wait=abc", json=body).json()["field"] == "wait"
        busy = c.post("/v1/jobs", json={**body, "model": "DreamShaper"})  # served, but no miner of it here
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0
        models = {m["id"]: m["capacity"]["miners"] for m in c.get("/v1/models").json()["data"]}
        assert models["RealisticVision"] == 2 and models["DreamShaper"] == 0
    with api(grid, grid["other_key"]) as other:
        assert other.get(f"/v1/jobs/{mine['id']}").status_code == 404, "another key's job does not exist for it"
        assert other.get(f"/v1/jobs/{mine['id']}/result").status_code == 404
    with api(grid, grid["slow_key"]) as slow:
        codes = [slow.post("/v1/jobs", json=body) for _ in range(3)]
        assert [r.status_code for r in codes] == [202, 202, 429], [r.text for r in codes]
        assert 0 < int(codes[-1].headers["Retry-After"]) <= 61 and "rate of 2" in codes[-1].json()["detail"]


def test_a_revoked_key_is_refused_once_the_gateways_reuse_of_it_ends(grid):
    from app.config import get_settings

    with grid["v"].sessions() as s:
        token = keys.create_key(s, name="gw-revoked", rate_per_minute=100, daily_quota=100)[1]
    body = {"model": "RealisticVision", "prompt": "a kept key", "params": SMALL}
    with api(grid, token) as c:
        job = c.post("/v1/jobs", json=body)
        assert job.status_code == 202, job.text  # checked, and reused by this gateway for gateway_cache_s
        c.delete(f"/v1/jobs/{job.json()['id']}")
        with grid["v"].sessions() as s:
            keys.revoke_key(s, "gw-revoked")
        time.sleep(get_settings().gateway_cache_s + 0.5)
        refused = c.post("/v1/jobs", json=body)
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"], refused.text
        assert c.get("/v1/models").status_code == 401


def test_the_openai_client_gets_an_image(grid):
    import openai

    honest_only(grid)
    client = openai.OpenAI(base_url=grid["url"] + "/v1", api_key=grid["key"], timeout=120)
    out = client.images.generate(model="RealisticVision", prompt="a red circle on a blue background", size="256x256",
                                 response_format="b64_json")
    pixels = media.decode(base64.b64decode(out.data[0].b64_json), "image/png")
    assert pixels.shape == (1, 256, 256, 3)
    by_url = client.images.generate(model="RealisticVision", prompt="a red circle", size="256x256",
                                    response_format="url")
    fetched = httpx.get(by_url.data[0].url, timeout=30)  # no key: the URL's token stands for it
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert httpx.get(by_url.data[0].url.split("?")[0] + "?token=forged", timeout=30).status_code == 404
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="RealisticVision", prompt="x", size="huge")


def test_the_openai_client_edits_an_image_as_img2img(grid, settings):
    """client.images.edit uploads the picture; it is the job's init image (the answer equals this process's
    own img2img of it), with our strength and seed as form fields; what img2img cannot do is a 400 naming it."""
    import openai

    from ..helpers.commands import in_process_hash

    honest_only(grid)
    client = openai.OpenAI(base_url=grid["url"] + "/v1", api_key=grid["key"], timeout=120)
    picture = base64.b64decode(noise_image(seed=3))
    out = client.images.edit(model="RealisticVision", image=("start.png", picture, "image/png"),
                             prompt="a lighthouse at dusk", size="256x256", extra_body={"strength": 0.5, "seed": 7})
    answer = base64.b64decode(out.data[0].b64_json)
    with grid["v"].sessions() as s:
        job = s.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).one()
        assert job.request["pipeline"] == "img2img" and job.request["strength"] == 0.5 and job.request["seed"] == 7
        assert base64.b64decode(job.request["init_image"]) == picture
    assert media.pixel_sha256(media.decode(answer, "image/png")) == in_process_hash(settings, job.request)
    for kwargs, field in (({"mask": ("mask.png", picture, "image/png")}, "mask"),
                          ({"extra_body": {"strength": "lots"}}, "strength"),
                          ({"size": "huge"}, "size")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.edit(model="RealisticVision", image=("start.png", picture, "image/png"), prompt="x",
                               **kwargs)
        assert refused.value.param == field, refused.value.body
    with pytest.raises(openai.BadRequestError) as refused:  # not a picture: the protocol's check, under its name
        client.images.edit(model="RealisticVision", image=("start.png", b"not a picture", "image/png"), prompt="x")
    assert refused.value.param == "image", refused.value.body
    auth = {"Authorization": f"Bearer {grid['key']}"}
    as_json = httpx.post(grid["url"] + "/v1/images/edits", json={"prompt": "x"}, headers=auth, timeout=30)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.text, as_json.text
    no_image = httpx.post(grid["url"] + "/v1/images/edits", data={"prompt": "x"}, files={"other": b"x"}, headers=auth,
                          timeout=30)
    assert no_image.status_code == 400 and no_image.json()["error"]["param"] == "image", no_image.text


def test_failover_past_a_down_an_erroring_and_a_silent_miner(grid):
    """In-process attempts (runner.run_job) over the real miners: the three failing miners rank
    first (score 0.9), the honest ones are new (below the floor), so the order is fixed."""
    from app.validator.context import Validator

    use_miners(grid, honest1=(0.0, 0), hostile_json=(0.9, 10), hostile_silent=(0.9, 10), down=(0.9, 10))
    base = grid["v"]
    v = Validator(**{**base.__dict__, "settings": base.settings.model_copy(update={
        "gateway_max_attempts": 4, "timeout_scale": 0.5, "query_grace": 1.0, "gateway_sample_rate": 0.0,
        "gateway_check_rate": 0.0})})
    with v.sessions() as s:
        key = keys.authenticate(s, grid["key"])
        request = parse_request({"model": "RealisticVision", "prompt": "a red circle", "seed": 3, "params": SMALL,
                                 "kind": "inference", "request_id": jobs.new_job_id()})
        job, _ = jobs.create_job(s, key=key, request=request)
    run = runner.run_job(v, job.id, rng=random.Random(5))
    assert run.status == "done" and not run.sampled
    with v.sessions() as s:
        tries = jobs.attempts(s, job.id)
        names = {h: n for n, h in grid["hotkeys"].items()}
        assert [names[r.hotkey] for r in tries][-1] == "honest1"
        assert sorted((names[r.hotkey], r.status) for r in tries[:-1]) == [
            ("down", "error"), ("hostile_json", "error"), ("hostile_silent", "timeout")], [(r.status, r.error) for r in tries]
        failed = s.scalars(select(Outcome).where(Outcome.response_id.in_([r.id for r in tries[:-1]]))).all()
        assert len(failed) == 3 and all(o.reward == -0.05 and not o.request_success for o in failed)
        json_miner = s.get(MinerState, grid["hotkeys"]["hostile_json"])
        assert (json_miner.interval_attempts, json_miner.interval_request_successes) == (1, 0)
        honest = s.get(MinerState, grid["hotkeys"]["honest1"])
        assert (honest.interval_attempts, honest.interval_request_successes, honest.interval_verified) == (1, 1, 0), \
            "an unsampled delivery is a successful request, with no verdict"
        assert s.get(Job, job.id).status == "done" and s.get(Job, job.id).attempts == 4


def test_sampled_verification_catches_a_cheater(grid):
    use_miners(grid, cheater=(0.3, 10))
    with api(grid) as c:
        job = c.post("/v1/jobs?wait=60", json={"model": "RealisticVision", "prompt": "a cat", "params": SMALL}).json()
        assert job["status"] == "done", job  # the client gets its bytes at once
    judged = wait_verdict(grid, job["id"])
    assert judged["verification"]["verdict"] == "failed", judged
    with grid["v"].sessions() as s:
        response = s.scalar(select(Response).where(Response.challenge_id == job["id"],
                                                   Response.status == "answered"))
        assert response.hotkey == grid["hotkeys"]["cheater"]
        assert s.scalar(select(Outcome.reward).where(Outcome.response_id == response.id)) == -0.05


def test_the_better_miner_gets_more_jobs(grid):
    use_miners(grid, honest1=(0.5, 10), honest2=(0.05, 10))
    with api(grid) as c:  # one job at a time: no miner is busy, so delivery follows routing's draw
        ids = [c.post("/v1/jobs?wait=60", json={"model": "RealisticVision", "prompt": f"a circle {i}",
                                                "params": SMALL}).json()["id"] for i in range(20)]
    with grid["v"].sessions() as s:
        finished = [s.get(Job, i) for i in ids]
        assert all(j.status == "done" for j in finished), [j.error for j in finished if j.status != "done"]
        winners = [s.get(Response, j.response_id).hotkey for j in finished]
        first = [jobs.attempts(s, i)[0].hotkey for i in ids]  # routing's draw, before any 429 moved a job
    count = lambda hotkeys: {n: hotkeys.count(grid["hotkeys"][n]) for n in ("honest1", "honest2")}  # noqa: E731
    drawn, delivered = count(first), count(winners)
    # weights 0.5 : 0.05 (0.09 of the draws to honest2: 7 or more of 20 has a chance of about 1 in 1,000)
    assert drawn["honest1"] > 2 * drawn["honest2"] and delivered["honest1"] > 2 * delivered["honest2"], (drawn, delivered)


def test_a_job_survives_its_gateway_and_io_worker_being_killed(grid):
    from app.tasks.gateway import resume_jobs

    honest_only(grid)
    with api(grid) as c:
        job = c.post("/v1/jobs", json={"model": "RealisticVision", "prompt": "a red circle",
                                       "params": {"steps": 8, "width": 512, "height": 512}}).json()
    deadline = time.monotonic() + 30
    while job_status(grid, job["id"]) == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)  # a session per read: a held SQLite transaction would block the worker's claim
    grid["gateway"].stop(signal.SIGKILL)
    grid["io"].stop(signal.SIGKILL)
    assert job_status(grid, job["id"]) == "running", "killed mid-job"
    port = grid["url"].rsplit(":", 1)[1]
    gateway = grid["processes"]("gateway", "serve", "--port", port, env=ENV)
    grid["processes"]("worker", "io", "--name", "gw2", env=ENV)
    gateway.wait_http(grid["url"] + "/healthz")
    deadline = time.monotonic() + 120
    with api(grid) as c:
        while time.monotonic() < deadline:
            resume_jobs.apply()  # what beat runs every 15 s: jobs past their lease are handed over again
            body = c.get(f"/v1/jobs/{job['id']}").json()
            if body["status"] == "done":
                break
            time.sleep(2)
    assert body["status"] == "done", body
    assert any(a["status"] in ("lost", "answered") for a in body["attempts"]), body["attempts"]


def test_the_dashboard_shows_organic_traffic(grid):
    from fastapi.testclient import TestClient

    from app.validator.dashboard import create_dashboard_app

    dashboard = TestClient(create_dashboard_app(grid["v"].settings))
    before = dashboard.get("/api/organic").json()
    for miners in ({"cheater": (0.3, 10)}, {"honest1": (0.3, 10)}):  # one caught, one exact
        use_miners(grid, **miners)
        with api(grid) as c:
            job = c.post("/v1/jobs?wait=60", json={"model": "RealisticVision", "prompt": "a square",
                                                   "params": SMALL}).json()
        wait_verdict(grid, job["id"])
    board = dashboard.get("/api/organic").json()
    assert board["jobs"] == before["jobs"] + 2 and board["by_status"]["done"] >= 2, board
    assert 0 < board["success_rate"] <= 1 and board["latency_p50_s"] <= board["latency_p95_s"], board
    for verdict in ("exact", "failed"):  # an earlier test's pending verdict may settle meanwhile too
        assert board["verdicts"].get(verdict, 0) >= before["verdicts"].get(verdict, 0) + 1, (verdict, board)
    assert "Organic traffic" in dashboard.get("/").text


def test_seedgrid_submit_follows_a_job_and_writes_its_file(grid, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    honest_only(grid)
    out = tmp_path / "circle.png"
    seedgrid = str(Path(sys.executable).parent / "seedgrid")
    run = subprocess.run([seedgrid, "submit", "--model", "RealisticVision", "--prompt", "a red circle", "--seed", "4",
                          "--param", "steps=2", "--param", "width=256", "--param", "height=256", "--url", grid["url"],
                          "--key", grid["key"], "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "done" in run.stderr and f"wrote {out}" in run.stdout
    assert media.decode(out.read_bytes(), "image/png").shape == (1, 256, 256, 3)
    bad = subprocess.run([seedgrid, "submit", "--model", "RealisticVision", "--prompt", "x", "--param", "steps=500",
                          "--url", grid["url"], "--key", grid["key"]], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "params.steps" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
