"""Routing, keys and job records, on the real Redis and a scratch database (no processes)."""

import json
import random
from collections import Counter

import pytest
import redis
from sqlalchemy import select

from app import migrations
from app.db import session_scope
from app.gateway import jobs, keys, routing
from app.models import ApiKey, Challenge, Job, MinerState, Response
from app.protocol.request import parse_request
from app.scoring.tiers import tier_table

TIERS = tier_table(json.dumps([
    {"name": "Bronze", "request_success": 0, "validation_success": 0, "min_successes": 0, "reward_factor": 0.45,
     "request_limit": 5},
    {"name": "Gold", "request_success": 0.9, "validation_success": 0.9, "min_successes": 1, "reward_factor": 0.9,
     "request_limit": 5}]))


def miner(hotkey, score=0.3, tier="Bronze", successes=10, **kw):
    return MinerState(**{"hotkey": hotkey, "uid": 0, "model": "RealisticVision", "axon": "h:1", "reachable": True,
                         "tier": tier, "interval_attempts": 0, "score": score, "total_successes": successes, **kw})


def pick_counts(miners, n=4000, exploration=0.05, seed=1, take=lambda m: True):
    rng = random.Random(seed)
    picks = Counter()
    for _ in range(n):
        m = routing.pick_miner(miners, "RealisticVision", tiers=TIERS, rng=rng, floor=0.02, exploration=exploration,
                               take=take)
        picks[m.hotkey if m else None] += 1
    return picks


def test_better_miners_get_more_jobs_in_proportion_to_score_times_tier():
    picks = pick_counts([miner("a", 0.4), miner("b", 0.2), miner("gold", 0.2, tier="Gold")], exploration=0)
    # weights 0.4*0.45 : 0.2*0.45 : 0.2*0.9 = 2 : 1 : 2
    assert picks["a"] / picks["b"] == pytest.approx(2, rel=0.15)
    assert picks["gold"] / picks["b"] == pytest.approx(2, rel=0.15)


def test_below_the_floor_only_new_miners_get_the_exploration_share():
    miners = [miner("good", 0.4), miner("failing", -0.05, successes=30), miner("new", 0.0, successes=0)]
    picks = pick_counts(miners, exploration=0.05)
    assert picks["failing"] == 0, "an established miner below the floor gets no organic job"
    assert picks["new"] / 4000 == pytest.approx(0.05, abs=0.015)
    assert pick_counts([miner("failing", -0.05, successes=30)])[None] == 4000, "nobody: the job gets a 503"
    assert pick_counts([miner("new", 0.0, successes=0)], exploration=0)["new"] == 4000, "the only one left"
    cheater = miner("cheater", -0.0085, successes=0)  # never verified, only failed: not a new miner
    assert pick_counts([miner("good", 0.4), cheater], exploration=0.5)["cheater"] == 0
    assert pick_counts([cheater])[None] == 4000


def test_tier_limits_exclusions_and_quota_are_respected():
    miners = [miner("busy", interval_attempts=5), miner("tried"), miner("noquota"), miner("ok"),
              miner("down", reachable=False), miner("video", model="TextToVideo")]
    rng = random.Random(3)
    for _ in range(200):
        m = routing.pick_miner(miners, "RealisticVision", tiers=TIERS, rng=rng, floor=0.02, exploration=0.05,
                               exclude={"tried"}, take=lambda m: m.hotkey != "noquota")
        assert m.hotkey == "ok"
    cap = routing.capacity(miners, "RealisticVision", tiers=TIERS, floor=0.02)
    assert cap == {"miners": 3, "ranked": 3, "new": 0, "tiers": {"Bronze": 3}}


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path}/g.db"
    migrations.upgrade(url)
    return lambda: session_scope(url)


def test_a_key_is_stored_hashed_and_authenticates_until_revoked(db):
    with db() as s:
        row, key = keys.create_key(s, name="alice", rate_per_minute=5, daily_quota=10)
    assert key.startswith("sg_") and len(key) > 30
    with db() as s:
        stored = s.scalar(select(ApiKey).where(ApiKey.name == "alice"))
        assert key not in (stored.key_hash, stored.prefix) and stored.key_hash == keys.hash_key(key)
        assert keys.authenticate(s, key).id == row.id
        assert keys.authenticate(s, key + "x") is None and keys.authenticate(s, "Bearer") is None
    with pytest.raises(keys.ApiKeyError, match="exists already"):
        with db() as s:
            keys.create_key(s, name="alice", rate_per_minute=5, daily_quota=10)
    with db() as s:
        keys.revoke_key(s, "alice")
    with db() as s:
        assert keys.authenticate(s, key) is None
    with pytest.raises(keys.ApiKeyError, match="no key named"):
        with db() as s:
            keys.revoke_key(s, "bob")


def test_rate_and_daily_limits_count_in_redis_and_say_when_to_retry(redis_url):
    r = redis.Redis.from_url(redis_url)
    key = ApiKey(id=987654, name="t", key_hash="x", prefix="sg_", rate_per_minute=3, daily_quota=4)
    for k in r.scan_iter("seedgrid:gateway:*:987654:*"):
        r.delete(k)
    now = 1_800_000_010.0  # 10 s into a minute
    assert [keys.take_call(r, key, now=now) for _ in range(3)] == [None] * 3
    limited = keys.take_call(r, key, now=now)
    assert "rate of 3" in limited.reason and limited.retry_after_s == 51
    assert keys.take_call(r, key, now=now + 60) is None, "the next minute"
    daily = keys.take_call(r, key, now=now + 120)
    assert "daily quota of 4" in daily.reason and daily.retry_after_s > 3600


def test_idempotency_claims_leases_and_cancel(db):
    with db() as s:
        key, _ = keys.create_key(s, name="k", rate_per_minute=5, daily_quota=10)
    req = parse_request({"model": "RealisticVision", "prompt": "a red circle", "seed": 5, "kind": "inference",
                         "request_id": jobs.new_job_id()})
    again = parse_request({**req.to_dict(), "request_id": jobs.new_job_id()})
    with db() as s:
        job, created = jobs.create_job(s, key=key, request=req, idempotency_key="abc")
        assert created
    with db() as s:
        same, created = jobs.create_job(s, key=key, request=again, idempotency_key="abc")
        assert not created and same.id == job.id
    other = parse_request({**req.to_dict(), "request_id": jobs.new_job_id(), "prompt": "a blue square"})
    with pytest.raises(jobs.JobConflict):
        with db() as s:
            jobs.create_job(s, key=key, request=other, idempotency_key="abc")
    with db() as s:
        claimed = jobs.claim(s, job.id, lease_s=lambda model: 30, block=lambda: 7)
        assert claimed.status == "running" and s.get(Challenge, job.id).kind == "inference"
        s.add(Response(challenge_id=job.id, hotkey="m", uid=1, status="sent"))
    with db() as s:
        assert jobs.claim(s, job.id, lease_s=lambda model: 30, block=lambda: 7) is None, "held by a live worker"
        s.get(Job, job.id).lease_until = s.get(Job, job.id).created_at  # the holder died: its lease ran out
    with db() as s:
        assert jobs.resumable(s, queued_for_s=60) == [job.id]
        assert jobs.claim(s, job.id, lease_s=lambda model: 30, block=lambda: 7) is not None
        lost = s.scalar(select(Response).where(Response.challenge_id == job.id))
        assert lost.status == "lost" and "not the miner's failure" in lost.error
    with db() as s:
        assert jobs.cancel(s, s.get(Job, job.id)) and s.get(Job, job.id).status == "cancelled"
        assert not jobs.cancel(s, s.get(Job, job.id)), "a finished job stays as it is"
        assert s.get(Challenge, job.id).status == "unsampled"
