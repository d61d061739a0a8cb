"""TradingEnv: gymnasium + SB3 env checkers, determinism, next-open execution, episodes, ruin,
observation = ObservationBuilder / ObservationWindow (what the runtime uses)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from coin_cli.config import EnvConfig, Settings
from coin_cli.env import TradingEnv, make_env
from coin_cli.env.execution import ExecutionModel, ExecutionParams
from coin_cli.env.observation import ObservationBuilder, ObservationWindow
from coin_cli.features import FeatureSpec, OnlineFeatureEngine, compute_offline


def candles(n: int = 600, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.002, n))
    return pd.DataFrame({"open_time": np.arange(n, dtype=np.int64) * 3_600_000, "open": open_,
                         "high": np.maximum(open_, close) * 1.003, "low": np.minimum(open_, close) * 0.997,
                         "close": close, "volume": rng.lognormal(2, 1, n)})


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = candles()
    return frame, compute_offline(frame)


def test_gymnasium_env_checker(data) -> None:
    from gymnasium.utils.env_checker import check_env

    frame, feats = data
    for cfg in (EnvConfig(episode_length=64), EnvConfig(action="discrete", discrete_levels=3),
                EnvConfig(long_only=False, drawdown_penalty=0.1, turnover_penalty=0.01)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any checker warning fails the test
            check_env(TradingEnv(frame, feats, cfg, mode="train"), skip_render_check=True)


def test_stable_baselines3_env_checker(data) -> None:
    from stable_baselines3.common.env_checker import check_env

    frame, feats = data
    check_env(TradingEnv(frame, feats, EnvConfig(long_only=False), mode="train"), warn=False)
    check_env(TradingEnv(frame, feats, EnvConfig(action="discrete"), mode="eval"), warn=False)


def test_same_seed_same_actions_same_trajectory(data) -> None:
    frame, feats = data

    def run(seed: int) -> list[tuple]:
        env = TradingEnv(frame, feats, EnvConfig(episode_length=100), mode="train")
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [(info["bar"], obs.tobytes())]
        done = False
        while not done:
            obs, reward, term, trunc, info = env.step(rng.random(1).astype(np.float32))
            out.append((obs.tobytes(), reward, info["equity"], info["fee"]))
            done = term or trunc
        return out

    assert run(11) == run(11)
    assert run(11)[0][0] != run(12)[0][0] or run(11) != run(12)  # the seed picks the start bar


def test_target_executes_at_the_next_open_with_costs(data) -> None:
    frame, feats = data
    cfg = EnvConfig(fee_bps=10.0, slippage_bps=5.0)
    env = TradingEnv(frame, feats, cfg, mode="eval")
    _, info = env.reset()
    t = info["bar"]
    assert t == env.first_bar == FeatureSpec.default().warmup + cfg.lookback - 1
    _, reward, _, _, info = env.step(np.array([0.5], dtype=np.float32))
    model = ExecutionModel(ExecutionParams.from_settings(cfg))
    next_open, next_close = frame["open"][t + 1], frame["close"][t + 1]
    expected = model.fill(model.order_for_target(0.5, 10_000.0, 0.0, next_open), next_open)
    assert expected.price == model.buy_price(next_open) != frame["close"][t]  # the open of t+1, not close of t
    assert info["traded_qty"] == expected.qty and info["fee"] == expected.fee
    cash = 10_000.0 - expected.qty * expected.price - expected.fee
    assert info["cash"] == pytest.approx(cash, abs=1e-9)
    assert info["equity"] == pytest.approx(cash + expected.qty * next_close, rel=1e-12)
    assert reward == pytest.approx(math.log(info["equity"] / 10_000.0), abs=1e-12)
    assert info["bar"] == t + 1


def test_eval_runs_the_whole_range_and_rewards_sum_to_log_growth(data) -> None:
    frame, feats = data
    env = TradingEnv(frame, feats, EnvConfig(), mode="eval", record=True)
    env.reset()
    total, steps, done = 0.0, 0, False
    while not done:
        _, reward, term, trunc, info = env.step(1.0)
        total += reward
        steps += 1
        done = term or trunc
    assert not term and trunc and info["bar"] == len(frame) - 1
    assert steps == len(frame) - 1 - env.first_bar == len(env.recorder)
    assert total == pytest.approx(math.log(info["equity"] / 10_000.0), abs=1e-9)
    assert env.stats()["trades"] >= 1


def test_training_episodes_have_fixed_length_and_random_starts(data) -> None:
    frame, feats = data
    env = TradingEnv(frame, feats, EnvConfig(episode_length=50), mode="train")
    starts = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        starts.add(info["bar"])
        steps = 0
        while True:
            _, _, term, trunc, _ = env.step(0.0)
            steps += 1
            if term or trunc:
                break
        assert steps == 50
    assert len(starts) > 1 and min(starts) >= env.first_bar


def test_start_end_split_and_ruin() -> None:
    frame = candles(400)
    frame.loc[300:, ["open", "close", "high", "low"]] *= 0.3  # a crash
    feats = compute_offline(frame)
    env = TradingEnv(frame, feats, EnvConfig(ruin_fraction=0.5, min_notional=0.0), mode="eval", start=250, end=350)
    _, info = env.reset()
    assert info["bar"] == 250
    done_term = False
    for _ in range(200):
        _, _, term, trunc, info = env.step(1.0)
        if term or trunc:
            done_term = term
            break
    assert done_term and info["equity"] < 5_000.0 and info["bar"] == 300
    with pytest.raises(ValueError, match="no bar to act on"):
        TradingEnv(frame, feats, EnvConfig(), start=399)


def test_discrete_levels_map_to_weights(data) -> None:
    frame, feats = data
    env = TradingEnv(frame, feats, EnvConfig(action="discrete", discrete_levels=3, long_only=False), mode="eval")
    env.reset()
    assert env.action_space.n == 3
    *_, info = env.step(0)
    assert info["target"] == -1.0 and info["position"] < 0
    *_, info = env.step(1)
    assert info["target"] == 0.0
    *_, info = env.step(2)
    assert info["target"] == 1.0


def test_observation_matches_builder_and_the_runtime_window(data) -> None:
    frame, feats = data
    cfg = EnvConfig(lookback=8)
    env = TradingEnv(frame, feats, cfg, mode="eval")
    obs, _ = env.reset()
    obs, _, _, _, info = env.step(0.7)
    builder = ObservationBuilder(feats.columns, cfg.lookback)
    t = info["bar"]
    raw = feats.to_numpy()[t - cfg.lookback + 1: t + 1]
    np.testing.assert_array_equal(obs, builder.observe(raw, info["position"], env.drawdown))
    assert obs.dtype == np.float32 and obs.shape == (builder.size,) == env.observation_space.shape
    assert builder.names()[-3:] == ["range[t]", "position_weight", "drawdown"]
    # the runtime: online features pushed bar by bar give the same vector
    engine, window = OnlineFeatureEngine(), ObservationWindow(builder)
    for row in frame.iloc[: t + 1].to_dict("records"):
        window.push(engine.update(row))
    assert window.ready
    np.testing.assert_array_equal(window.observation(info["position"], env.drawdown), obs)


def test_make_env_from_settings_computes_features() -> None:
    frame = candles(300)
    env = make_env(Settings(env=EnvConfig(lookback=4)), frame, mode="eval")
    obs, _ = env.reset()
    assert obs.shape == (4 * len(FeatureSpec.default().names) + 2,)
    assert env.feature_row()["vol_24"] == pytest.approx(compute_offline(frame)["vol_24"][env.bar])
