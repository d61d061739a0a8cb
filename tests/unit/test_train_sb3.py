"""Algorithm registry, budget-scaled hyperparameters, SB3Policy loading and the action -> weight
map (checked against TradingEnv itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coin_cli.agents.policy import PolicyInput
from coin_cli.agents.sb3 import SB3Policy, check_algo_action, hyperparameters
from coin_cli.agents.sb3_numpy import NumpyPolicy
from coin_cli.config import load_settings
from coin_cli.errors import DataError, UsageError


def test_algo_needs_its_action_space() -> None:
    for algo in ("ppo", "a2c"):
        check_algo_action(algo, "continuous")
        check_algo_action(algo, "discrete")
    check_algo_action("sac", "continuous")
    check_algo_action("dqn", "discrete")
    with pytest.raises(UsageError, match=r"--algo sac needs a continuous action space.*'discrete'"):
        check_algo_action("sac", "discrete")
    with pytest.raises(UsageError, match=r"--algo dqn needs a discrete action space.*COIN_ENV__ACTION=discrete"):
        check_algo_action("dqn", "continuous")
    with pytest.raises(UsageError, match="unknown algorithm 'td3'"):
        check_algo_action("td3", "continuous")


@pytest.mark.parametrize("timesteps", [100, 2048, 5000, 200_000, 5_000_000])
@pytest.mark.parametrize("n_envs", [1, 2, 8])
def test_small_budgets_still_make_several_updates(timesteps: int, n_envs: int) -> None:
    ppo = hyperparameters("ppo", timesteps, n_envs)
    n_steps = ppo["n_steps"]
    assert 64 <= n_steps <= 2048 and n_steps & (n_steps - 1) == 0
    assert (n_steps * n_envs) % ppo["batch_size"] == 0
    if timesteps >= 64 * 8 * n_envs:
        assert timesteps // (n_steps * n_envs) >= 8 or n_steps == 2048
    for algo in ("sac", "dqn"):
        params = hyperparameters(algo, timesteps, n_envs)
        assert 1_000 <= params["buffer_size"] <= 1_000_000
        assert params["learning_starts"] < max(timesteps, 2)
    assert hyperparameters("dqn", timesteps, n_envs)["target_update_interval"] <= max(100, timesteps // 20)


def _settings(**env: object):
    return load_settings(None, env={}, overrides={f"env.{k}": (v, "test") for k, v in env.items()})


@pytest.mark.parametrize(("action", "levels", "long_only"), [
    ("discrete", 2, True), ("discrete", 3, True), ("discrete", 3, False), ("continuous", 2, True),
    ("continuous", 2, False),
])
def test_action_weights_match_trading_env(action: str, levels: int, long_only: bool) -> None:
    from coin_cli.data.bootstrap import generate_candles
    from coin_cli.env.trading_env import make_env
    from coin_cli.pipelines.train_env import action_weights

    settings = _settings(action=action, discrete_levels=levels, long_only=long_only)
    weights = action_weights(settings)
    env = make_env(settings, generate_candles(400, "1h", 1), mode="eval")
    env.reset()
    if action == "discrete":
        assert len(weights["levels"]) == levels
        for i, level in enumerate(weights["levels"]):
            *_, info = env.step(i)
            assert info["target"] == level
    else:
        assert weights == {"low": float(env.action_space.low[0]), "high": float(env.action_space.high[0])}


def _net(head: str, n_out: int) -> NumpyPolicy:
    rng = np.random.default_rng(0)
    arrays = {"w0": rng.normal(size=(4, n_out)).astype(np.float32), "b0": np.zeros(n_out, np.float32),
              "action_low": np.zeros(1, np.float32), "action_high": np.ones(1, np.float32)}
    return NumpyPolicy(arrays, {"head": head, "activations": ["none"], "obs_dim": 4})


def test_sb3_policy_maps_actions_to_weights() -> None:
    discrete = _net("categorical", 3)
    discrete.spec["weights"] = {"levels": [0.0, 0.5, 1.0]}
    policy = SB3Policy(discrete, feature_hash="h", promoted=True)
    obs = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    assert policy.act(PolicyInput(features={}, observation=obs)) == [0.0, 0.5, 1.0][int(policy.action(obs))]
    box = _net("gaussian", 1)
    box.spec["weights"] = {"low": 0.0, "high": 1.0}
    weight = SB3Policy(box, feature_hash="h", promoted=True).act(PolicyInput(features={}, observation=obs))
    assert 0.0 <= weight <= 1.0
    with pytest.raises(DataError, match="observation"):
        policy.act(PolicyInput(features={}))


def test_sb3_policy_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such train run folder"):
        SB3Policy.load(tmp_path / "absent")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(DataError, match=r"train_manifest.json: not found"):
        SB3Policy.load(run)
    (run / "train_manifest.json").write_text(json.dumps({"status": "promoted", "algo": "ppo"}))
    (run / "feature_manifest.json").write_text(json.dumps({"spec": {}}))
    with pytest.raises(DataError, match="implementation_hash missing"):
        SB3Policy.load(run)
    (run / "feature_manifest.json").write_text(json.dumps({"implementation_hash": "abc"}))
    with pytest.raises(DataError, match=r"policy.npz: policy weights not found"):
        SB3Policy.load(run)
    net = _net("gaussian", 1)
    net.spec["weights"] = {"low": 0.0, "high": 1.0}
    net.save(run / "policy.npz")
    policy = SB3Policy.load(run)
    assert policy.promoted and policy.feature_hash == "abc" and policy.algo == "ppo" and policy.run_id == "run"
    (run / "train_manifest.json").write_text(json.dumps({"status": "not_promoted"}))
    assert SB3Policy.load(run).promoted is False
