"""Every scoring formula on hand-worked numbers."""

import pytest

from app.scoring.rewards import ema, latency_penalty, reward
from app.scoring.tiers import IntervalStats, Tier, TierTable
from app.scoring.weights import MinerScore, compute_weights


def test_latency_penalty():
    assert latency_penalty(0, 12) == 0
    assert latency_penalty(6, 12) == pytest.approx(0.05)  # 0.4 * (1/2)^3
    assert latency_penalty(12, 12) == pytest.approx(0.4)
    assert latency_penalty(30, 12) == 0.4  # capped


def test_rewards():
    assert reward(verified=True, kind="challenge", latency_s=6, timeout_s=12, tier_factor=0.72) == pytest.approx(0.67)
    assert reward(verified=False, kind="challenge", latency_s=1, timeout_s=12, tier_factor=1.0) == -0.01
    assert reward(verified=False, kind="inference", latency_s=1, timeout_s=12, tier_factor=1.0) == -0.05


def test_ema():
    assert ema(0.0, 1.0) == pytest.approx(0.05)
    assert ema(0.5, -0.01) == pytest.approx(0.4745)  # 0.95*0.5 + 0.05*(-0.01)
    s = 0.0
    for _ in range(100):
        s = ema(s, 0.45)
    assert s == pytest.approx(0.45 * (1 - 0.95**100))


T = TierTable()


def stats(attempts, ok, verified, failed):
    return IntervalStats(attempts, ok, verified, failed)


def test_rates():
    s = stats(1000, 990, 950, 40)
    assert s.request_rate == 0.99 and s.validation_rate == pytest.approx(950 / 990)
    assert stats(0, 0, 0, 0).request_rate is None


def test_bronze_promotes_to_the_highest_qualifying_tier():
    # rates 99.95%/99.95% with 20,000 total successes: Silver and Gold qualify, Grandmaster needs 700,000
    t = T.transition("Bronze", stats(2000, 1999, 1999, 1), total_successes=20_000, challenger_return=False)
    assert t.tier == "Gold" and t.reason.startswith("promoted")


def test_promotion_needs_the_minimum_count():
    t = T.transition("Bronze", stats(100, 100, 100, 0), total_successes=3_499, challenger_return=False)
    assert t.tier == "Bronze"
    assert T.transition("Bronze", stats(100, 100, 100, 0), 3_500, False).tier == "Silver"


def test_relegation_one_tier_when_rates_fail():
    # Gold needs 94.9%: 90% validation success relegates to Silver
    t = T.transition("Gold", stats(100, 100, 90, 10), total_successes=50_000, challenger_return=False)
    assert t.tier == "Silver" and t.reason.startswith("relegated")


def test_challenger_downtime_and_return_without_the_minimum():
    down = T.transition("Challenger", stats(1000, 900, 900, 0), total_successes=2_500_000, challenger_return=False)
    assert down.tier == "Grandmaster" and down.challenger_return
    # next interval: rates hold Challenger's again; total successes below 2,000,000 do not matter
    back = T.transition("Grandmaster", stats(1000, 1000, 1000, 0), total_successes=10, challenger_return=True)
    assert back.tier == "Challenger" and not back.challenger_return
    # without the flag, the same numbers stay in Grandmaster (min count 700,000 unmet for promotion)
    assert T.transition("Grandmaster", stats(1000, 1000, 1000, 0), 10, False).tier == "Grandmaster"


def test_no_requests_keeps_the_tier():
    assert T.transition("Gold", stats(0, 0, 0, 0), 0, False).tier == "Gold"


def test_bronze_never_falls_and_table_from_json():
    assert T.transition("Bronze", stats(10, 0, 0, 0), 0, False).tier == "Bronze"
    small = TierTable.from_json('[{"name":"Bronze","request_success":0,"validation_success":0,"min_successes":0,'
                                '"reward_factor":0.45,"request_limit":5},{"name":"Silver","request_success":0.9,'
                                '"validation_success":0.9,"min_successes":3,"reward_factor":0.55,"request_limit":10}]')
    assert small.transition("Bronze", stats(3, 3, 3, 0), 3, False).tier == "Silver"
    assert small.request_limit("Bronze") == 5
    with pytest.raises(ValueError):
        TierTable([Tier("A", 0, 0, 0, 1, 1), Tier("A", 0, 0, 0, 1, 1)])


def test_weights_normalise_within_type_then_share_and_volume():
    scores = [
        MinerScore(0, "RealisticVision", 0.3, 1000),
        MinerScore(1, "RealisticVision", 0.1, 1000),
        MinerScore(2, "RealisticVision", -0.02, 1000),  # a cheater: negative score, zero weight
        MinerScore(3, "TextToVideo", 0.5, 250),  # volume 250 -> scale 0.5 -> multiplier 0.95
    ]
    w = compute_weights(scores, {"RealisticVision": 0.22, "TextToVideo": 0.12})
    assert w[0] == pytest.approx(0.75 * 0.22) and w[1] == pytest.approx(0.25 * 0.22)
    assert w[2] == 0.0
    assert w[3] == pytest.approx(0.12 * 0.95)
