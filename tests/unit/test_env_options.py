"""Issue 17's env options: the no-trade band in the execution model, the reward options, the
discrete levels as weights (env and exported policy map an action the same way)."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from coin_cli.config import EnvConfig, Settings, load_settings
from coin_cli.env import TradingEnv
from coin_cli.env.execution import ExecutionModel, ExecutionParams, action_levels
from coin_cli.errors import ConfigError
from coin_cli.features import compute_offline
from tests.unit.test_env_trading import candles


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = candles(800, 11)
    return frame, compute_offline(frame)


def _rollout(frame, feats, cfg: EnvConfig, seed: int = 3) -> tuple[TradingEnv, dict[str, list]]:
    """Random target weights through an evaluation env; the recorded trace."""
    env = TradingEnv(frame, feats, cfg, mode="eval", record=True)
    env.reset()
    rng = random.Random(seed)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step_weight(rng.choice([0.0, 0.3, 0.35, 0.6, 1.0, rng.random()]))
        done = term or trunc
    return env, env.recorder.to_columns()


# ---- the no-trade band ---------------------------------------------------------------------------

def test_band_no_order_inside_an_order_outside_and_closing_always_allowed() -> None:
    m = ExecutionModel(ExecutionParams(trade_band=0.1, fee_bps=0.0, slippage_bps=0.0, tick_size=0.0))
    qty = 0.25  # at a price of 20,000 with 5,000 cash: 5,000 / 10,000 = weight 0.5
    assert m.order_for_target(0.59, 5_000.0, qty, 20_000.0) == 0.0
    assert m.order_for_target(0.41, 5_000.0, qty, 20_000.0) == 0.0
    assert m.execute(0.55, 5_000.0, qty, 20_000.0) == (None, 5_000.0, qty)
    # outside the band: the whole move to the target (0.7 * 10,000 / 20,000 - 0.25 = 0.1 BTC)
    assert m.order_for_target(0.7, 5_000.0, qty, 20_000.0) == pytest.approx(0.1)
    assert m.order_for_target(0.0, 5_000.0, qty, 20_000.0) == pytest.approx(-0.25)  # close: never banded
    # without a band the same small move is an order
    plain = ExecutionModel(ExecutionParams(fee_bps=0.0, slippage_bps=0.0, tick_size=0.0))
    assert plain.order_for_target(0.55, 5_000.0, qty, 20_000.0) == pytest.approx(0.025)


@pytest.mark.parametrize("band", [0.05, 0.2])
def test_fused_execute_equals_the_three_calls_with_a_band(band: float) -> None:
    m = ExecutionModel(ExecutionParams(trade_band=band))
    rng = random.Random(9)
    for _ in range(3000):
        price = 10 ** rng.uniform(1, 5)
        cash = rng.uniform(0, 20_000)
        qty = rng.choice([0.0, rng.uniform(0, 20_000) / price])
        weight = rng.choice([0.0, 1.0, rng.random()])
        order = m.order_for_target(weight, cash, qty, price)
        fused = m.execute(weight, cash, qty, price)
        if order == 0.0:
            assert fused == (None, cash, qty)
            continue
        fill = m.fill(order, price)
        assert fused == (fill, *m.apply(fill, cash, qty))


def test_env_with_a_band_fills_only_outside_it(data) -> None:
    frame, feats = data
    band = 0.15
    env, trace = _rollout(frame, feats, EnvConfig(trade_band=band))
    opens = frame["open"].to_numpy()
    cash, qty = 10_000.0, 0.0
    fills = inside = 0
    bar = env.first_bar
    for i, target in enumerate(trace["target"]):
        open_price = opens[bar + 1 + i]
        weight_at_open = qty * open_price / (cash + qty * open_price)
        if trace["traded_qty"][i] != 0.0:
            fills += 1
            assert target == 0.0 or abs(target - weight_at_open) > band
        elif target != 0.0 and abs(target - weight_at_open) <= band:
            inside += 1
        cash, qty = trace["cash"][i], trace["qty"][i]
    assert fills > 10 and inside > 10  # both cases happened
    # and it saves trades against the same targets without a band
    _, plain = _rollout(frame, feats, EnvConfig())
    assert sum(q != 0 for q in plain["traded_qty"]) > fills


def test_band_is_an_execution_parameter_from_settings() -> None:
    settings = load_settings(None, env={"COIN_ENV__TRADE_BAND": "0.07"})
    assert ExecutionParams.from_settings(settings).trade_band == 0.07
    with pytest.raises(ConfigError, match=r"env\.trade_band"):
        load_settings(None, env={"COIN_ENV__TRADE_BAND": "1.5"})


# ---- rewards -------------------------------------------------------------------------------------

def _equity_and_notional(trace: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
    equity = np.concatenate([[10_000.0], np.asarray(trace["equity"])])
    notional = np.abs(np.asarray(trace["traded_qty"])) * np.asarray(trace["fill_price"])
    return equity, notional


def test_log_return_rewards_sum_to_log_growth(data) -> None:
    frame, feats = data
    env, trace = _rollout(frame, feats, EnvConfig(reward="log_return"))
    equity, _ = _equity_and_notional(trace)
    assert np.allclose(trace["reward"], np.log(equity[1:] / equity[:-1]), rtol=0, atol=1e-15)
    assert sum(trace["reward"]) == pytest.approx(math.log(env.equity / 10_000.0), abs=1e-12)


@pytest.mark.parametrize("coef", [None, 0.004])
def test_turnover_penalty_reward(data, coef: float | None) -> None:
    frame, feats = data
    _, trace = _rollout(frame, feats, EnvConfig(reward="log_return_turnover_penalty", reward_coef=coef))
    equity, notional = _equity_and_notional(trace)
    c = 0.0015 if coef is None else coef  # the default: fee 10 bps + slippage 5 bps
    expected = np.log(equity[1:] / equity[:-1]) - c * notional / equity[:-1]
    assert (notional > 0).sum() > 10
    assert np.allclose(trace["reward"], expected, rtol=0, atol=1e-12)


def test_differential_sharpe_reward_by_its_recurrence(data) -> None:
    frame, feats = data
    eta = 0.05
    env, trace = _rollout(frame, feats, EnvConfig(reward="differential_sharpe", reward_coef=eta))
    equity, _ = _equity_and_notional(trace)
    a = b = 0.0
    expected = []
    for r in np.log(equity[1:] / equity[:-1]):  # Moody & Saffell (1998), eq. for D_t
        var = b - a * a
        d = (b * (r - a) - 0.5 * a * (r * r - b)) / var ** 1.5 if var > 1e-18 else 0.0
        expected.append(min(max(d, -10.0), 10.0))
        a, b = a + eta * (r - a), b + eta * (r * r - b)
    assert np.allclose(trace["reward"], expected, rtol=1e-9, atol=1e-12)
    assert expected[0] == 0.0 and any(abs(x) > 0.1 for x in expected)
    # the moving moments start again with every episode
    env.reset()
    _, first, *_ = env.step_weight(trace["target"][0])
    assert first == 0.0


def test_reward_changes_only_the_reward_not_the_trajectory(data) -> None:
    frame, feats = data
    traces = [_rollout(frame, feats, EnvConfig(reward=kind, trade_band=0.1))[1]
              for kind in ("log_return", "differential_sharpe", "log_return_turnover_penalty")]
    for other in traces[1:]:
        assert other["equity"] == traces[0]["equity"] and other["traded_qty"] == traces[0]["traded_qty"]
        assert other["reward"] != traces[0]["reward"]


# ---- discrete levels -----------------------------------------------------------------------------

def test_discrete_levels_as_weights_env_and_exported_policy_agree(data) -> None:
    from coin_cli.pipelines.train_env import action_weights

    frame, feats = data
    levels = [0.0, 0.3, 1.0]
    cfg = EnvConfig(action="discrete", discrete_levels=levels)
    env = TradingEnv(frame, feats, cfg, mode="eval")
    assert env.action_space.n == 3
    env.reset()
    _, _, _, _, info = env.step(1)
    assert info["target"] == 0.3
    assert action_weights(Settings(env=cfg)) == {"levels": levels}
    assert action_levels(3, 0.0) == [0.0, 0.5, 1.0] and action_levels(3, -1.0) == [-1.0, 0.0, 1.0]


def test_discrete_levels_validation() -> None:
    with pytest.raises(ValueError, match="long_only"):
        TradingEnv(*[candles(200), compute_offline(candles(200))],
                   EnvConfig(action="discrete", discrete_levels=[-0.5, 1.0]), mode="eval")
    assert EnvConfig(long_only=False, discrete_levels=[-0.5, 1.0]).discrete_levels == [-0.5, 1.0]
    for bad in ("[1, 1]", "[0, 2]", "1", "[]"):
        with pytest.raises(ConfigError, match=r"env\.discrete_levels"):
            load_settings(None, env={"COIN_ENV__DISCRETE_LEVELS": bad})
