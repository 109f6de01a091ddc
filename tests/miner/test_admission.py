"""Admission state in a real Redis: replay store, quota windows, in-flight slots."""

import time

import pytest
import redis

from app import keys, migrations
from app.chain.local import LocalChain
from app.miner.admission import Admission, AdmissionPolicy, MetagraphCache, Refused
from app.miner.nonces import RedisNonceStore


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('adm')}/chain.db"
    migrations.upgrade(url)
    c = LocalChain(url, netuid=1)
    c.init(block_time=12)
    for hotkey, stake in (("v", 50_000), ("w", 5_000_000), ("low", 10)):
        c.register(hotkey, "cold")
        c.set_stake(hotkey, stake)
    return c


@pytest.fixture
def client(redis_url):
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def admission(client, chain):
    def make(name, **policy):
        return _admission(client, chain, name, **policy)

    return make


def _admission(client, chain, name, **policy):
    base = dict(min_stake=10_000, require_permit=False, total_volume=10, limit_interval=600, max_concurrent=2,
                slot_ttl=30)
    return Admission(policy=AdmissionPolicy(**{**base, **policy}), metagraph=MetagraphCache(chain, ttl=60),
                     redis_client=client, miner_hotkey=f"{name}-{time.time_ns()}")


def test_nonce_store_refuses_a_second_sighting_across_instances(client):
    a, b = RedisNonceStore(client, "m"), RedisNonceStore(client, "m")
    nonce = time.time_ns()
    assert a.check_and_store("hk", nonce) and not b.check_and_store("hk", nonce)
    assert client.ttl(f"seedgrid:nonce:m:hk:{nonce}") <= RedisNonceStore.retention


def test_two_api_replicas_share_the_quota(client, admission):
    first = admission("shared")
    second = Admission(policy=first.policy, metagraph=first.metagraph, redis_client=client, miner_hotkey=first.miner_hotkey)
    assert first.quotas()["v"] == 3
    first.take_quota("v")
    second.take_quota("v")
    first.take_quota("v")
    with pytest.raises(Refused) as err:
        second.take_quota("v")
    assert err.value.status == 429 and err.value.retry_after > 0
    assert first.used()["v"] == 4


def test_blacklist_reasons(admission):
    a = admission("bl", require_permit=True)
    with pytest.raises(Refused, match="not registered"):
        a.check_caller("nobody")
    with pytest.raises(Refused, match="below"):
        a.check_caller("low")
    assert a.check_caller("w").stake == 5_000_000
    assert a.priority("w") == 0 and a.priority("v") == 1 and a.priority("nobody") == 9


def test_slots_are_released_and_a_crashed_holder_expires(client, admission):
    a = admission("slots", slot_ttl=0.5)
    with a.slot(), a.slot():
        with pytest.raises(Refused) as err:
            with a.slot():
                pass
        assert err.value.error == "too_many_concurrent"
    with a.slot():  # released after use
        pass
    client.zadd(keys.miner_inflight(a.miner_hotkey), {"crashed-1": time.time(), "crashed-2": time.time()})
    with pytest.raises(Refused):
        with a.slot():
            pass
    time.sleep(0.6)
    with a.slot():  # the crashed replica's slots have expired
        pass
