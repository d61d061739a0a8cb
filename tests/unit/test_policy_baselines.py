"""Policies: the protocol, VolTarget arithmetic and band, BuyAndHold, Flat, from settings; rollout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coin_cli.agents.baselines import BuyAndHold, Flat, VolTarget, baseline_from_settings
from coin_cli.agents.policy import Policy, PolicyInput
from coin_cli.config import EnvConfig, PolicyConfig, Settings
from coin_cli.env import TradingEnv
from coin_cli.env.rollout import rollout
from coin_cli.errors import UsageError
from coin_cli.features import compute_offline


def inp(vol: float, position: float = 0.0) -> PolicyInput:
    return PolicyInput(features={"vol_24": vol}, position_weight=position)


def test_voltarget_weight_is_target_over_annualised_vol_clipped() -> None:
    policy = VolTarget(target_vol=0.5, vol_feature="vol_24", max_weight=1.0, bars_per_year=8760.0)
    vol = 0.01  # per bar -> 0.01 * sqrt(8760) = 0.936 annualised
    assert policy.act(inp(vol)) == pytest.approx(0.5 / (0.01 * math.sqrt(8760)))
    assert policy.act(inp(0.001)) == 1.0  # clipped at max_weight
    assert policy.act(inp(float("nan"))) == 0.0  # warming up: flat
    assert policy.act(inp(0.0)) == 1.0  # no movement at all
    assert VolTarget(max_weight=0.3).act(inp(0.0001)) == 0.3


def test_voltarget_keeps_the_position_inside_the_band() -> None:
    policy = VolTarget(target_vol=0.5, bars_per_year=8760.0, rebalance_band=0.05)
    target = 0.5 / (0.01 * math.sqrt(8760))  # 0.534
    assert policy.act(inp(0.01, position=target - 0.04)) == target - 0.04
    assert policy.act(inp(0.01, position=target - 0.06)) == pytest.approx(target)
    assert policy.act(inp(0.01, position=0.0)) == pytest.approx(target)  # flat always enters


def test_from_settings_uses_the_interval_and_policy_section() -> None:
    settings = Settings.model_validate({"data": {"interval": "5m"},
                                        "policy": {"target_vol": 0.2, "max_weight": 0.8, "rebalance_band": 0.0}})
    policy = baseline_from_settings("voltarget", settings)
    assert isinstance(policy, VolTarget)
    assert policy.bars_per_year == pytest.approx(365 * 24 * 12)
    assert (policy.target_vol, policy.max_weight, policy.rebalance_band) == (0.2, 0.8, 0.0)
    assert baseline_from_settings("buyhold", settings).act(inp(0.1)) == 0.8
    assert baseline_from_settings("flat", settings).act(inp(0.1)) == 0.0
    for policy in (VolTarget(), BuyAndHold(), Flat()):
        assert isinstance(policy, Policy)
    with pytest.raises(UsageError, match="unknown baseline policy 'momentum'"):
        baseline_from_settings("momentum", settings)
    with pytest.raises(UsageError, match=r"policy\.vol_feature: 'vol_7' is not a feature"):
        baseline_from_settings("voltarget", Settings(policy=PolicyConfig(vol_feature="vol_7")))


def test_rollout_summary_matches_the_trace() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    open_ = np.concatenate([[100.0], close[:-1]])  # a bar opens at the previous close, as on an exchange
    frame = pd.DataFrame({"open_time": np.arange(500) * 3_600_000, "open": open_, "high": close * 1.01,
                          "low": close * 0.99, "close": close, "volume": rng.lognormal(1, 1, 500)})
    env = TradingEnv(frame, compute_offline(frame), EnvConfig(), mode="eval")
    result = rollout(env, VolTarget(rebalance_band=0.05))
    trace = result.trace
    s = result.summary
    assert s["steps"] == len(trace["equity"]) == 500 - 1 - env.first_bar
    assert s["final_equity"] == trace["equity"][-1]
    assert s["fees"] == pytest.approx(sum(trace["fee"]))
    assert s["trades"] == sum(1 for q in trace["traded_qty"] if q != 0.0)
    assert s["total_reward"] == pytest.approx(sum(trace["reward"]))
    assert s["total_reward"] == pytest.approx(math.log(s["final_equity"] / 10_000.0))
    peak, worst = 10_000.0, 0.0
    for e in trace["equity"]:
        peak = max(peak, e)
        worst = max(worst, 1 - e / peak)
    assert s["max_drawdown"] == pytest.approx(worst)
    # the band makes VolTarget trade far less often than every bar
    assert 0 < s["trades"] < s["steps"] / 3
    again = rollout(env, VolTarget(rebalance_band=0.05))
    assert again.trace == trace  # deterministic
