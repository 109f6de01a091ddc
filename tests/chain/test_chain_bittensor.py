"""BittensorChain drives the real bittensor 11 SDK against an in-memory fake of the chain RPC."""

import pytest

from app import __version__
from app.chain.base import ChainError, version_key
from app.chain.bittensor_chain import BittensorChain
from app.chain.wallets import create_wallet

from ..fakes.substrate import FakeNeuron, FakeSubstrate

RAO = 10**9


@pytest.fixture
def setup(tmp_path, monkeypatch):
    # the SDK caches token symbols under ~/.bittensor unless told otherwise
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))
    validator, _ = create_wallet(tmp_path / "w", "val", "hot")
    miner, _ = create_wallet(tmp_path / "w", "miner", "hot")
    stranger, _ = create_wallet(tmp_path / "w", "stranger", "hot")
    fake = FakeSubstrate(netuid=7, neurons=[
        FakeNeuron(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, 250_000 * RAO, True),
        FakeNeuron(miner.hotkey.ss58_address, miner.coldkeypub.ss58_address, 12 * RAO, False),
        FakeNeuron("5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM", "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM"),
    ])
    return fake, validator, miner, stranger


def test_metagraph_maps_to_the_interface(setup):
    fake, validator, miner, _ = setup
    chain = BittensorChain("local", 7, substrate=fake)
    assert chain.block() == 1000
    neurons = chain.metagraph()
    assert [n.uid for n in neurons] == [0, 1, 2]
    assert neurons[0].hotkey == validator.hotkey.ss58_address and neurons[0].stake == 250_000
    assert neurons[0].validator_permit and not neurons[1].validator_permit
    assert neurons[1].coldkey == miner.coldkeypub.ss58_address and neurons[1].axon is None


def test_set_weights_submits_u16_weights_for_the_right_uids_and_version(setup):
    fake, validator, *_ = setup
    chain = BittensorChain("local", 7, wallet=validator, substrate=fake)
    result = chain.set_weights({1: 0.6, 2: 0.2, 0: 0.0}, version_key=version_key())
    [sub] = fake.submitted
    assert (sub.module, sub.function, sub.signer) == ("SubtensorModule", "set_mechanism_weights",
                                                      validator.hotkey.ss58_address)
    assert sub.params["netuid"] == 7 and sub.params["dests"] == [1, 2]
    assert sub.params["weights"] == [65535, 21845], "normalised to a max of 65535, zeros dropped"
    assert sub.params["version_key"] == version_key() == result.version_key
    assert result.weights == {1: 65535, 2: 21845}


def test_rate_limit_and_registration_are_refused_before_signing(setup):
    fake, validator, _, stranger = setup
    chain = BittensorChain("local", 7, wallet=validator, substrate=fake)
    chain.set_weights({1: 1.0}, version_key=1)
    fake.block += 5
    with pytest.raises(ChainError, match="rate limit"):
        chain.set_weights({1: 1.0}, version_key=1)
    with pytest.raises(ChainError, match="not registered"):
        BittensorChain("local", 7, wallet=stranger, substrate=fake).set_weights({1: 1.0}, version_key=1)
    assert len(fake.submitted) == 1


def test_serve_axon_publishes_the_endpoint(setup):
    fake, _, miner, _ = setup
    BittensorChain("local", 7, wallet=miner, substrate=fake).serve_axon("10.1.2.3", 8091)
    sub = fake.submitted[-1]
    assert sub.function == "serve_axon" and sub.params["port"] == 8091 and sub.params["ip"] == 0x0A010203
    assert BittensorChain("local", 7, substrate=fake).metagraph()[1].axon == "10.1.2.3:8091"


def test_writes_need_a_wallet_and_non_zero_weights(setup):
    fake, validator, *_ = setup
    with pytest.raises(ChainError, match="wallet"):
        BittensorChain("local", 7, substrate=fake).serve_axon("127.0.0.1", 1)
    with pytest.raises(ChainError, match="zero"):
        BittensorChain("local", 7, wallet=validator, substrate=fake).set_weights({1: 0.0}, version_key=1)


def test_unknown_subnet_is_a_clear_error(setup):
    fake, *_ = setup
    with pytest.raises(ChainError, match="subnet 9 does not exist"):
        BittensorChain("local", 9, substrate=fake).metagraph()


def test_version_key_follows_the_package_version():
    assert version_key("1.2.3") == 1_002_003 and version_key("0.10.0rc1") == 10_000
    assert version_key() == version_key(__version__)
