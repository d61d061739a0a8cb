"""Numpy inference of SB3 MLP policies equals SB3's deterministic `predict` (within 1e-5)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

torch = pytest.importorskip("torch")

from coin_cli.agents.sb3_numpy import NumpyPolicy, export_policy  # noqa: E402

OBS_DIM = 7


class TinyEnv(gym.Env):
    """A Box-observation env with either a Box or a Discrete action space."""

    def __init__(self, action_space: spaces.Space, obs_scale: float = 3.0):
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = action_space
        self.obs_scale = obs_scale
        self._t = 0

    def _obs(self) -> np.ndarray:
        return (self.np_random.normal(size=OBS_DIM) * self.obs_scale + 1.5).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        return self._obs(), float(np.sum(action)), self._t >= 32, False, {}


CASES = {
    "ppo-box": ("PPO", spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)),
    "ppo-box-sym": ("PPO", spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)),
    "ppo-discrete": ("PPO", spaces.Discrete(3)),
    "a2c-box": ("A2C", spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)),
    "a2c-discrete": ("A2C", spaces.Discrete(2)),
    "sac-box": ("SAC", spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)),
    "sac-box-sym": ("SAC", spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)),
    "dqn-discrete": ("DQN", spaces.Discrete(3)),
}


def _trained(algo: str, action_space: spaces.Space, normalize: bool):
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    venv = make_vec_env(lambda: TinyEnv(action_space), n_envs=1, seed=3)
    if normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=5.0)
    kwargs = {"learning_starts": 32, "buffer_size": 512} if algo in ("SAC", "DQN") else {}
    if algo == "PPO":
        kwargs.update(n_steps=64, batch_size=32, n_epochs=2)
    model = getattr(sb3, algo)("MlpPolicy", venv, seed=3, device="cpu", **kwargs)
    model.learn(100 if algo in ("SAC", "DQN") else 200)  # some gradient steps: weights are not the initial ones
    return model, (venv if normalize else None)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "vecnorm"])
def test_numpy_action_equals_sb3_deterministic(case: str, normalize: bool, tmp_path: Path) -> None:
    algo, action_space = CASES[case]
    model, vecnorm = _trained(algo, action_space, normalize)
    exported = export_policy(model, vecnorm)
    exported.save(tmp_path / "policy.npz")
    loaded = NumpyPolicy.load(tmp_path / "policy.npz")

    rng = np.random.default_rng(0)
    # wide inputs on purpose: exercise VecNormalize clipping and the action-space clip/squash
    batch = (rng.normal(size=(400, OBS_DIM)) * 6.0 + 1.5).astype(np.float32)
    for obs in batch[:50]:
        net_obs = vecnorm.normalize_obs(obs[None])[0] if vecnorm is not None else obs
        expected, _ = model.predict(net_obs, deterministic=True)
        got = loaded.predict(obs)
        assert np.shape(got) == np.shape(expected)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    net_batch = vecnorm.normalize_obs(batch) if vecnorm is not None else batch
    expected_batch, _ = model.predict(net_batch, deterministic=True)
    np.testing.assert_allclose(loaded.predict(batch), expected_batch, atol=1e-5, rtol=0)
    if isinstance(action_space, spaces.Box):  # the clip/squash matters: some outputs sit on the bounds
        assert np.all(loaded.predict(batch) >= action_space.low - 1e-7)
        assert np.all(loaded.predict(batch) <= action_space.high + 1e-7)


def test_load_rejects_missing_and_corrupt_files(tmp_path: Path) -> None:
    from coin_cli.errors import DataError

    with pytest.raises(DataError, match="not found"):
        NumpyPolicy.load(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        NumpyPolicy.load(bad)
