"""Issue 17's env options give the same results in TradingEnv and in `coin trade --mode replay`
(the real command, real candles from tests/data).

What is compared, bar by bar over every traded bar: the equity marked at the bar's close, the
position (base quantity), and the bars on which an order filled with its quantity and price
(the replay's SQLite ledger vs the env's trace). For the rewards, which only shape training:
the reward TradingEnv gives at each bar equals the reward recomputed here from the REPLAY's
ledger (its equity per bar and its fills' notional) with each option's formula.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TEST_DATA, run_coin

NEUTRAL_RISK = {"COIN_RISK__MAX_DRAWDOWN": "1", "COIN_RISK__REDUCE_DRAWDOWN": "1",
                "COIN_RISK__MAX_DAILY_TURNOVER": "1000000", "COIN_ENV__RUIN_FRACTION": "0"}
BAND = {"COIN_ENV__TRADE_BAND": "0.08", "COIN_POLICY__REBALANCE_BAND": "0"}  # the execution's band, not VolTarget's
SYMBOL, INTERVAL = "BTCUSDT", "5m"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("env-options")
    result = run_coin(["data", "import", str(TEST_DATA / "binance_BTCUSDT_5m.csv"), "--symbol", SYMBOL,
                       "--interval", INTERVAL], cwd=work)
    assert result.returncode == 0, result.stderr
    return work


def _replay(work: Path, policy: str, env: dict[str, str], state: str, *extra: str) -> dict[str, Any]:
    result = run_coin(["trade", "--mode", "replay", "--symbol", SYMBOL, "--interval", INTERVAL, "--policy", policy,
                       "--state-file", state, "--json", *extra], cwd=work, env={**NEUTRAL_RISK, **env})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = [json.loads(line) for line in (work / "runs" / summary["run_id"] / "metrics.jsonl").read_text().splitlines()]
    bars = {r["bar"]: r for r in rows if "equity" in r and r.get("reason") != "warm-up"}
    conn = sqlite3.connect(work / state)
    try:
        fills = {bar: (qty, price, notional) for bar, qty, price, notional in
                 conn.execute("SELECT bar, qty, price, notional FROM fills ORDER BY seq")}
    finally:
        conn.close()
    return {"summary": summary, "bars": bars, "fills": fills}


def _env_trace(work: Path, policy: Any, env: dict[str, str]) -> dict[str, list]:
    from coin_cli.config import load_settings
    from coin_cli.data.store import CandleStore
    from coin_cli.env.rollout import rollout
    from coin_cli.env.trading_env import make_env

    settings = load_settings(None, env={**NEUTRAL_RISK, **env},
                             overrides={"data.symbol": (SYMBOL, "t"), "data.interval": (INTERVAL, "t")})
    candles = CandleStore(work / "data", "binance").read(SYMBOL, INTERVAL)
    if policy == "voltarget":
        from coin_cli.agents.baselines import VolTarget

        policy = VolTarget.from_settings(settings)
    return rollout(make_env(settings, candles, mode="eval"), policy).trace


def _assert_same(replay: dict[str, Any], trace: dict[str, list]) -> None:
    bars = replay["bars"]
    assert len(trace["open_time"]) > 5_000
    matched = [t for t in trace["open_time"] if t in bars]
    assert len(matched) == len(trace["open_time"])  # every env step is a traded bar of the replay
    for i, t in enumerate(trace["open_time"]):
        assert bars[t]["equity"] == pytest.approx(trace["equity"][i], rel=1e-9)
        assert bars[t]["position"] == pytest.approx(trace["qty"][i], rel=1e-9, abs=1e-12)
    env_fills = {t: (q, p) for t, q, p in zip(trace["open_time"], trace["traded_qty"], trace["fill_price"],
                                              strict=True) if q != 0.0}
    assert set(env_fills) == set(replay["fills"])
    for t, (qty, price) in env_fills.items():
        assert replay["fills"][t][0] == pytest.approx(qty, rel=1e-12)
        assert replay["fills"][t][1] == pytest.approx(price, rel=1e-12)
    assert replay["summary"]["trades"] == len(env_fills) > 20


def test_trade_band_same_in_env_and_replay_and_it_saves_trades(market: Path) -> None:
    replay = _replay(market, "voltarget", BAND, "band.sqlite")
    trace = _env_trace(market, "voltarget", BAND)
    _assert_same(replay, trace)
    without = _env_trace(market, "voltarget", {"COIN_POLICY__REBALANCE_BAND": "0"})
    assert sum(q != 0.0 for q in without["traded_qty"]) > 2 * replay["summary"]["trades"]


@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe", "log_return_turnover_penalty"])
def test_each_reward_is_what_the_replay_ledger_implies(market: Path, reward: str) -> None:
    state = f"reward-{reward}.sqlite"
    replay = _replay(market, "voltarget", BAND, state)
    trace = _env_trace(market, "voltarget", {**BAND, "COIN_ENV__REWARD": reward})
    _assert_same(replay, trace)
    equity = [10_000.0] + [replay["bars"][t]["equity"] for t in trace["open_time"]]
    notional = [replay["fills"].get(t, (0, 0, 0.0))[2] for t in trace["open_time"]]
    expected, a, b = [], 0.0, 0.0
    for i in range(1, len(equity)):
        r = math.log(equity[i] / equity[i - 1])
        if reward == "log_return":
            expected.append(r)
        elif reward == "log_return_turnover_penalty":
            expected.append(r - 0.0015 * notional[i - 1] / equity[i - 1])  # default coef: fee + slippage
        else:
            var = b - a * a
            d = (b * (r - a) - 0.5 * a * (r * r - b)) / var ** 1.5 if var > 1e-18 else 0.0
            expected.append(min(max(d, -10.0), 10.0))
            a, b = a + 0.01 * (r - a), b + 0.01 * (r * r - b)
    assert np.allclose(trace["reward"], expected, rtol=1e-6, atol=1e-9)


def test_trained_discrete_levels_and_band_same_in_env_and_replay(market: Path) -> None:
    """A model trained with levels [0, 0.5, 1] and a band of 0.1 trades with both in the replay
    (the replay's own settings say nothing about them: the levels are in the exported policy,
    the band in its train_manifest), bar for bar as in TradingEnv."""
    from coin_cli.agents.sb3 import SB3Policy

    trained = {"COIN_ENV__ACTION": "discrete", "COIN_ENV__DISCRETE_LEVELS": "[0, 0.5, 1]",
               "COIN_ENV__TRADE_BAND": "0.1", "COIN_ENV__REWARD": "differential_sharpe"}
    result = run_coin(["train", "--symbol", SYMBOL, "--interval", INTERVAL, "--timesteps", "256", "--json"],
                      cwd=market, env=trained, timeout=300)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    replay = _replay(market, run_id, {}, "model.sqlite", "--allow-unpromoted")
    policy = SB3Policy.load(market / "runs" / run_id)
    trace = _env_trace(market, policy, {"COIN_ENV__TRADE_BAND": "0.1"})
    assert set(trace["target"]) <= {0.0, 0.5, 1.0}
    _assert_same(replay, trace)
