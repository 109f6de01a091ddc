"""Recovery after an outage: epochs missed while the validator was down are rolled over late, in order,
never skipped; generation rows a killed worker left running are settled."""

import json
import time

from sqlalchemy import select

from app import migrations
from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.config import Settings
from app.db import session_scope
from app.models import Epoch, Generation, MinerState, TierChange
from app.validator import epochs as epoch_jobs
from app.validator import records
from app.validator.context import open_validator

TIERS = [
    {"name": "Bronze", "request_success": 0, "validation_success": 0, "min_successes": 0, "reward_factor": 0.45,
     "request_limit": 100},
    {"name": "Silver", "request_success": 0.9, "validation_success": 0.9, "min_successes": 2, "reward_factor": 0.55,
     "request_limit": 100},
]


def test_epochs_missed_during_an_outage_are_rolled_late_in_order(tmp_path):
    settings = Settings(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/r.db", netuid=3, epoch_length=20,
                        tier_table=json.dumps(TIERS), validator_wallet="v", validator_hotkey="v")
    migrations.upgrade(settings.sqlalchemy_url)
    chain = LocalChain(settings.sqlalchemy_url, 3)
    chain.init(block_time=0.01)  # an epoch of 20 blocks in 0.2 s
    w, _ = create_wallet(settings.wallets_dir, "v", "v")
    chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
    with session_scope(settings.sqlalchemy_url) as s:
        records.upsert_miner(s, hotkey="hk", uid=1, default_tier="Bronze", model="RealisticVision", axon="x:1",
                             reachable=True, total_volume=40, quota=10)
    v = open_validator(settings)
    opened = epoch_jobs.epoch_tick(v)
    assert opened.get("opened")
    with session_scope(settings.sqlalchemy_url) as s:  # the interval the outage will cut short
        m = s.get(MinerState, "hk")
        m.interval_attempts = m.interval_request_successes = m.interval_verified = m.total_successes = 4
    time.sleep(0.75)  # the outage: three or more epoch boundaries pass with no tick
    result = epoch_jobs.epoch_tick(v)
    assert result["rolled"] and len(result["late"]) >= 2, result
    first = opened["epoch"]
    with session_scope(settings.sqlalchemy_url) as s:
        epochs = list(s.scalars(select(Epoch.epoch).order_by(Epoch.epoch)))
        assert epochs == list(range(first, result["epoch"] + 1)), "every epoch rolled once, none skipped"
        changes = {c.epoch: c for c in s.scalars(select(TierChange).where(TierChange.hotkey == "hk"))}
    assert sorted(changes) == epochs[1:]
    judged = changes[first + 1]
    assert (judged.from_tier, judged.to_tier, judged.request_rate) == ("Bronze", "Silver", 1.0), \
        "the first missed epoch judges the interval the outage cut short"
    assert all(changes[e].request_rate is None and changes[e].to_tier == "Silver" for e in epochs[2:]), \
        "the empty epochs after it keep the tier"


def test_rows_a_killed_worker_left_running_are_settled(tmp_path):
    from app.generation import records as gen_records
    from app.protocol.request import parse_request

    url = f"sqlite:///{tmp_path}/g.db"
    migrations.upgrade(url)
    request = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": 1})
    with session_scope(url) as s:
        gen_records.begin(s, task_id="mine", request=request, worker="gpu0@host")
        gen_records.begin(s, task_id="other", request=request, worker="gpu1@host")
    with session_scope(url) as s:
        assert gen_records.settle_abandoned(s, worker="gpu0@host") == 1
    with session_scope(url) as s:
        rows = {r.task_id: r for r in s.scalars(select(Generation))}
        assert rows["mine"].status == "failed" and "abandoned" in rows["mine"].error
        assert rows["other"].status == "running", "another worker's live task is left alone"
