"""LocalChain: shared by processes through the database; blocks from a clock; weights recorded."""

import json
import os
import subprocess
import time

import pytest

from app.chain.base import ChainError, permits, quantize_u16
from app.chain.local import LocalChain

from ..helpers.commands import SEEDGRID


@pytest.fixture
def chain(tmp_path):
    from app import migrations

    url = f"sqlite:///{tmp_path}/chain.db"
    migrations.upgrade(url)
    c = LocalChain(url, netuid=3)
    c.init(block_time=0.2, max_uids=4)
    return c


def test_register_stake_and_metagraph(chain):
    assert chain.register("hk-a", "ck-a") == 0
    assert chain.register("hk-b", "ck-b") == 1
    assert chain.register("hk-a", "ck-a") == 0, "registering twice keeps the uid"
    chain.set_stake("hk-b", 20_000)
    neurons = {n.hotkey: n for n in chain.metagraph()}
    assert neurons["hk-b"].stake == 20_000 and neurons["hk-b"].validator_permit
    assert not neurons["hk-a"].validator_permit, "no stake, no permit"
    chain.register("hk-c", "c")
    chain.register("hk-d", "d")
    with pytest.raises(ChainError, match="full"):
        chain.register("hk-e", "e")
    with pytest.raises(ChainError, match="not registered"):
        chain.set_stake("nobody", 1)


def test_blocks_advance_with_the_block_time(chain):
    first = chain.block()
    time.sleep(0.45)
    assert chain.block() >= first + 2
    assert chain.init(block_time=5) is False and chain.block_time() == 0.2, "init keeps an existing clock"


def test_weights_are_recorded_with_their_block(chain):
    for hk in ("v", "m1", "m2"):
        chain.register(hk, "c")
    validator = LocalChain(chain.url, chain.netuid, hotkey="v")
    result = validator.set_weights({1: 0.75, 2: 0.25, 0: 0.0}, version_key=7)
    assert result.weights == {1: 65535, 2: 21845} and result.version_key == 7
    recorded = chain.weight_sets("v")
    assert [(r.block, r.weights) for r in recorded] == [(result.block, result.weights)]
    assert {n.uid: n.last_update for n in chain.metagraph()}[0] == result.block
    with pytest.raises(ChainError, match="not registered"):
        validator.set_weights({9: 1.0}, version_key=7)


def test_serve_axon_publishes_the_address(chain):
    chain.register("m", "c")
    LocalChain(chain.url, chain.netuid, hotkey="m").serve_axon("127.0.0.1", 8091)
    assert chain.metagraph()[0].axon == "127.0.0.1:8091"
    with pytest.raises(ChainError):
        LocalChain(chain.url, chain.netuid, hotkey="m").serve_axon("127.0.0.1", 0)


def test_another_process_sees_the_same_chain(chain, tmp_path):
    chain.register("hk-a", "ck-a")
    chain.set_stake("hk-a", 12_345)
    env = {**os.environ, "SEEDGRID_DATABASE_URL": chain.url, "SEEDGRID_NETUID": "3", "SEEDGRID_CHAIN": "local"}
    p = subprocess.run([SEEDGRID, "chain", "show", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    assert seen["neurons"] == [n.to_dict() for n in chain.metagraph()]
    assert abs(seen["block"] - chain.block()) <= 30  # 0.2 s blocks; the subprocess took a few seconds
    later = subprocess.run([SEEDGRID, "chain", "block"], capture_output=True, text=True, env=env, timeout=60)
    assert int(later.stdout) > seen["block"]


def test_helpers():
    assert quantize_u16({3: 2.0, 4: 1.0, 5: -1.0}) == {3: 65535, 4: 32768}
    assert quantize_u16({}) == {}
    assert permits([(0, 5.0), (1, 9.0), (2, 0.0), (3, 9.0)], slots=2) == {1, 3}
