"""The validator's service functions, called directly with their collaborators: a scratch
database, the real Redis, a real signed MinerClient, and a chain whose block the test sets."""

import json
import random
import subprocess
import sys
from functools import partial

import pytest
import redis
from sqlalchemy import func, select

from app import migrations
from app.chain.base import Neuron
from app.chain.wallets import create_wallet
from app.config import Settings
from app.db import session_scope
from app.models import Challenge, Epoch, MinerState, Outcome, Response
from app.protocol.client import MinerClient
from app.scoring.tiers import tier_table
from app.validator import epochs, judging, records, rounds
from app.validator.context import Validator

from ..conftest import ROOT, free_port
from ..fakes.chain import ScriptedChain

TIERS = [
    {"name": "Bronze", "request_success": 0, "validation_success": 0, "min_successes": 0, "reward_factor": 0.45,
     "request_limit": 2},
    {"name": "Silver", "request_success": 0.9, "validation_success": 0.9, "min_successes": 1, "reward_factor": 0.55,
     "request_limit": 5},
]


@pytest.fixture
def v(tmp_path, redis_url):
    settings = Settings(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/v.db", epoch_length=10,
                        tier_table=json.dumps(TIERS), challenge_group_size=2, timeout_scale=0.25, query_grace=1.0)
    migrations.upgrade(settings.sqlalchemy_url)
    wallet, _ = create_wallet(settings.wallets_dir, "v", "v")
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("seedgrid:validator:sent:*"):
        r.delete(key)
    return Validator(settings=settings, sessions=partial(session_scope, settings.sqlalchemy_url),
                     chain=ScriptedChain(current_block=25), redis=r, client=MinerClient(wallet),
                     hotkey=wallet.hotkey.ss58_address)


def add_miners(v, n, model="RealisticVision", tier="Bronze", quota=10, axon="127.0.0.1:1"):
    with v.sessions() as s:
        for i in range(n):
            m = records.upsert_miner(s, hotkey=f"{model}-{i}", uid=len(list(s.scalars(select(MinerState)))),
                                     default_tier=tier, model=model, axon=axon, reachable=True, total_volume=40,
                                     quota=quota)
            m.tier = tier


def test_select_miners_respects_model_reach_tier_limit_group_size_and_quota():
    tiers = tier_table(json.dumps(TIERS))
    make = lambda hk, **kw: MinerState(**{"hotkey": hk, "uid": 0, "model": "RealisticVision", "axon": "h:1",  # noqa: E731
                                          "reachable": True, "tier": "Bronze", "interval_attempts": 0, **kw})
    miners = [make("ok1"), make("ok2"), make("ok3"), make("video", model="TextToVideo"), make("down", reachable=False),
              make("busy", interval_attempts=2), make("noaxon", axon=None), make("noquota")]
    pick = rounds.select_miners(miners, "RealisticVision", tiers=tiers, group_size=10, rng=random.Random(1),
                                take=lambda m: m.hotkey != "noquota")
    assert sorted(m.hotkey for m in pick) == ["ok1", "ok2", "ok3"]
    two = rounds.select_miners(miners, "RealisticVision", tiers=tiers, group_size=2, rng=random.Random(1),
                               take=lambda m: True)
    assert len(two) == 2


def test_a_round_reads_the_chain_once_and_takes_quota_per_chosen_miner(v):
    add_miners(v, 3, quota=1)
    add_miners(v, 1, model="TextToVideo")
    plans = rounds.start_round(v, rng=random.Random(7))
    assert v.chain.block_reads == 1
    assert {p.model for p in plans} == {"RealisticVision", "TextToVideo"}
    rv = next(p for p in plans if p.model == "RealisticVision")
    assert len(rv.response_ids) == 2, "the group size"
    with v.sessions() as s:
        challenge = s.get(Challenge, rv.challenge_id)
        assert challenge.block == 25 and challenge.request["params"]["steps"] >= 1
    # each chosen miner's quota (1) is now used up: the next round picks only the third
    again = rounds.start_round(v, rng=random.Random(8), models=["RealisticVision"])
    assert len(again[0].response_ids) == 1
    assert rounds.start_round(v, rng=random.Random(9), models=["RealisticVision"]) == []


def test_rounds_take_each_model_types_pipelines_in_turn_with_the_validators_own_images(v, tmp_path):
    from PIL import Image

    from app.protocol.request import parse_request

    add_miners(v, 1, quota=40)
    add_miners(v, 1, model="TextToVideo", quota=40)
    earlier = tmp_path / "earlier.png"
    Image.new("RGB", (600, 600), (200, 40, 40)).save(earlier)
    with v.sessions() as s:  # an earlier reproduction a new conditioning image may start from
        s.add(Challenge(id="old", model="RealisticVision", kind="challenge", request={}, block=1,
                        reproduction_path=str(earlier)))
    rng, seen, images = random.Random(3), {}, set()
    for _ in range(12):
        for plan in rounds.start_round(v, rng=rng):
            with v.sessions() as s:
                request = s.get(Challenge, plan.challenge_id).request
            req = parse_request(request)  # what the validator stored is a valid request
            seen.setdefault(plan.model, []).append(req.pipeline)
            image = req.init_image or (req.control.image if req.control else None)
            if image:
                assert image not in images, "a conditioning image is never sent twice"
                images.add(image)
    assert {m: sorted(set(p)) for m, p in seen.items()} == {
        "RealisticVision": ["controlnet", "img2img", "txt2img"], "TextToVideo": ["txt2vid"]}
    assert [seen["RealisticVision"].count(p) for p in ("txt2img", "img2img", "controlnet")] == [4, 4, 4], \
        "in turn: each pipeline as often as the others"


@pytest.fixture
def hostile_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.hostile_miner", json.dumps({port: "not_json"})],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield f"127.0.0.1:{port}"
    proc.kill()


def test_a_bad_answer_is_counted_at_once_in_the_epoch_of_its_challenge(v, hostile_server):
    add_miners(v, 1, axon=hostile_server)
    [plan] = rounds.start_round(v, rng=random.Random(1), models=["RealisticVision"])
    v.chain.current_block = 99  # the epoch moves on while the query runs: the outcome keeps the challenge's
    reads = v.chain.block_reads
    status = rounds.query_miner(v, plan.response_ids[0])
    assert status == "error" and v.chain.block_reads == reads, "no chain read per response"
    with v.sessions() as s:
        outcome = s.scalar(select(Outcome).where(Outcome.response_id == plan.response_ids[0]))
        assert outcome is not None and not outcome.request_success and outcome.epoch == 2
        assert s.get(MinerState, "RealisticVision-0").interval_attempts == 1
        response = s.get(Response, plan.response_ids[0])
        assert "malformed_answer" in response.error and response.http_status == 200, response.error
    assert rounds.query_miner(v, plan.response_ids[0]) == "error", "a redelivered query does nothing"


def test_a_miner_gone_before_its_query_is_lost_not_counted(v):
    add_miners(v, 1)
    [plan] = rounds.start_round(v, rng=random.Random(1), models=["RealisticVision"])
    with v.sessions() as s:
        records.forget_deregistered(s, set())
    assert rounds.query_miner(v, plan.response_ids[0]) == "lost"
    with v.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Outcome)) == 0


def test_sync_forgets_hotkeys_that_left_and_marks_the_silent_unreachable(v):
    add_miners(v, 2)
    silent = Neuron(uid=0, hotkey="RealisticVision-0", coldkey="c", stake=0.0, validator_permit=False,
                    axon=f"127.0.0.1:{free_port()}", last_update=0)
    me = Neuron(uid=5, hotkey=v.hotkey, coldkey="c", stake=1e6, validator_permit=True, axon=None, last_update=0)
    v.chain.neurons = [silent, me]
    result = rounds.sync_miners(v)
    assert result == {"neurons": 1, "reachable": 0, "forgotten": 1}
    with v.sessions() as s:
        assert s.get(MinerState, "RealisticVision-1") is None
        assert s.get(MinerState, "RealisticVision-0").reachable is False


def test_epochs_open_roll_once_and_weights_are_set_once_per_epoch(v):
    add_miners(v, 2)
    with v.sessions() as s:
        m = s.get(MinerState, "RealisticVision-0")
        m.score, m.interval_attempts, m.interval_request_successes, m.interval_verified = 0.4, 1, 1, 1
        m.total_successes = 1
    assert epochs.epoch_tick(v) == {"epoch": 2, "rolled": False, "opened": True}
    assert epochs.epoch_tick(v) == {"epoch": 2, "rolled": False}
    v.chain.current_block = 31
    rolled = epochs.epoch_tick(v)
    assert rolled["rolled"] and rolled["late"] == [] and rolled["changes"] == ["epoch 3 uid 0 Bronze->Silver"]
    with v.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Epoch)) == 2
    first = epochs.set_weights(v)
    assert first["set"] and first["weights"][0] > 0 and len(v.chain.weight_sets) == 1
    assert epochs.set_weights(v) == {"epoch": 3, "set": False}, "once per epoch"
    assert len(v.chain.weight_sets) == 1


def test_settle_stale_calls_an_old_unsent_query_lost_and_fails_a_lost_reproduction(v):
    import time

    add_miners(v, 1)
    [plan] = rounds.start_round(v, rng=random.Random(1), models=["RealisticVision"])
    later = time.time() + 3600
    result = judging.settle_stale(v, now=later)
    assert result == {"lost": 1, "failed_reproductions": 1, "reverify": []}
    with v.sessions() as s:
        assert s.get(Response, plan.response_ids[0]).status == "lost"
        assert s.get(Challenge, plan.challenge_id).status == "failed"
        assert s.scalar(select(func.count()).select_from(Outcome)) == 0, "our failure is not the miner's"
    assert judging.settle_stale(v, now=later) == {"lost": 0, "failed_reproductions": 0, "reverify": []}
