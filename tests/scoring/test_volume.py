import pytest

from app.scoring.volume import reward_multiplier, validator_quotas, volume_scale


def test_quota_split_of_the_specification():
    # SPEC.md: volume 100, stakes 15K/600K/1M -> 3/~37/~62 (floor of the stake^1.03 share)
    q = validator_quotas({"a": 15_000, "b": 600_000, "c": 1_000_000}, total_volume=100, min_stake=10_000)
    assert q == {"a": 3, "b": 36, "c": 62}


def test_validators_below_min_stake_get_no_quota():
    assert validator_quotas({"a": 9_999, "b": 50_000}, total_volume=40, min_stake=10_000) == {"b": 40}
    assert validator_quotas({"a": 5}, total_volume=40, min_stake=10_000) == {}


@pytest.mark.parametrize("volume, scale, mult", [(1000, 1.0, 1.0), (500, 0.7071, 0.97071), (300, 0.5477, 0.95477),
                                                 (4000, 1.0, 1.0), (0, 0.0, 0.9)])
def test_volume_scale_and_multiplier(volume, scale, mult):
    assert volume_scale(volume) == pytest.approx(scale, abs=1e-4)
    assert reward_multiplier(volume) == pytest.approx(mult, abs=1e-5)
