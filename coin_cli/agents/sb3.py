"""stable-baselines3 agents: the algorithm registry, model construction and loading, and
`SB3Policy`, a trained model behind the Policy protocol (numpy inference, no torch at run time).

torch and stable_baselines3 are imported inside the functions that need them, so loading an
`SB3Policy` for `coin trade` costs numpy only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.agents.run_files import read_run_json
from coin_cli.agents.sb3_numpy import NumpyPolicy
from coin_cli.errors import DataError, UsageError

log = logging.getLogger("coin.train")

POLICY_FILE = "policy.npz"
MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
TRAIN_MANIFEST = "train_manifest.json"
FEATURE_MANIFEST = "feature_manifest.json"


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    class_name: str  # attribute of the stable_baselines3 package
    actions: tuple[str, ...]  # env.action kinds the algorithm supports
    off_policy: bool


ALGORITHMS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec("ppo", "PPO", ("continuous", "discrete"), off_policy=False),
    "a2c": AlgoSpec("a2c", "A2C", ("continuous", "discrete"), off_policy=False),
    "sac": AlgoSpec("sac", "SAC", ("continuous",), off_policy=True),
    "dqn": AlgoSpec("dqn", "DQN", ("discrete",), off_policy=True),
}


def algo_spec(algo: str) -> AlgoSpec:
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise UsageError(f"--algo: unknown algorithm {algo!r} (choose from {', '.join(ALGORITHMS)})") from None


def check_algo_action(algo: str, action: str) -> None:
    """SAC needs a continuous action space and DQN a discrete one."""
    spec = algo_spec(algo)
    if action not in spec.actions:
        need = " or ".join(spec.actions)
        flag = f"COIN_ENV__ACTION={spec.actions[0]} or env.action: {spec.actions[0]} in the config"
        raise UsageError(f"--algo {algo} needs a {need} action space, but env.action is {action!r} (set {flag})")


def hyperparameters(algo: str, timesteps: int, n_envs: int) -> dict[str, Any]:
    """SB3 defaults, scaled down for small budgets so a short run still makes several updates."""
    if algo == "ppo":
        # rollout length: a power of two in [64, 2048] giving at least ~8 updates
        per_env = max(64, min(2048, timesteps // (8 * n_envs)))
        n_steps = 1 << (per_env.bit_length() - 1)
        return {"n_steps": n_steps, "batch_size": min(64, n_steps * n_envs)}
    if algo == "a2c":
        return {}
    buffer = int(min(1_000_000, max(1_000, timesteps)))  # SB3 allocates the whole buffer up front
    params: dict[str, Any] = {"buffer_size": buffer, "learning_starts": min(100, max(1, timesteps // 10))}
    if algo == "dqn":
        params["target_update_interval"] = max(100, min(10_000, timesteps // 20))
        params["exploration_fraction"] = 0.2
    return params


def build_model(algo: str, venv: Any, *, seed: int, timesteps: int, n_envs: int,
                tensorboard_log: Path | None = None, params: dict[str, Any] | None = None) -> Any:
    """The algorithm with the budget-scaled defaults, then `params` (train.algo_params) over them."""
    import stable_baselines3 as sb3

    spec = algo_spec(algo)
    cls = getattr(sb3, spec.class_name)
    kwargs = {**hyperparameters(algo, timesteps, n_envs), **(params or {})}
    return cls("MlpPolicy", venv, seed=seed, device="cpu", verbose=0,
               tensorboard_log=str(tensorboard_log) if tensorboard_log else None, **kwargs)


# set by coin itself (or meaningless for a CLI run): not for train.algo_params
RESERVED_PARAMS = frozenset({"policy", "env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model",
                             "policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs", "stats_window_size"})


def algo_param_names(algo: str) -> list[str]:
    """The keyword arguments train.algo_params may set for `algo` (from the SB3 class's signature)."""
    import inspect

    import stable_baselines3 as sb3

    cls = getattr(sb3, algo_spec(algo).class_name)
    return sorted(set(inspect.signature(cls.__init__).parameters) - RESERVED_PARAMS - {"self"})


def check_algo_params(algo: str, params: dict[str, Any], where: str = "train.algo_params") -> None:
    """UsageError naming the first key `algo` has no argument for."""
    if not params:
        return
    names = algo_param_names(algo)
    for key in params:
        if key not in names:
            raise UsageError(f"{where}.{key}: not an argument of {algo_spec(algo).class_name} "
                             f"(one of {', '.join(names)})")


def load_model(algo: str, path: Path, venv: Any | None = None) -> Any:
    import stable_baselines3 as sb3

    cls = getattr(sb3, algo_spec(algo).class_name)
    if not Path(path).is_file():
        raise DataError(f"{path}: model file not found")
    return cls.load(str(path), env=venv, device="cpu")


class SB3Policy:
    """A trained model behind the Policy protocol: observation -> deterministic action ->
    target weight, through the numpy forward pass exported at the end of training."""

    def __init__(self, net: NumpyPolicy, *, feature_hash: str, promoted: bool, run_id: str = "",
                 algo: str = "", status: str = ""):
        self.net = net
        self.feature_hash = feature_hash
        self.promoted = promoted
        self.run_id = run_id
        self.algo = algo
        self.status = status
        self.name = f"sb3:{run_id}" if run_id else "sb3"
        weights = net.spec.get("weights") or {}
        self._levels: list[float] | None = [float(v) for v in weights["levels"]] if "levels" in weights else None
        self._low = float(weights.get("low", -np.inf))
        self._high = float(weights.get("high", np.inf))

    @classmethod
    def load(cls, run_dir: Path) -> SB3Policy:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DataError(f"{run_dir}: no such train run folder")
        manifest = read_run_json(run_dir / TRAIN_MANIFEST)
        features = read_run_json(run_dir / FEATURE_MANIFEST)
        feature_hash = features.get("implementation_hash")
        if not isinstance(feature_hash, str) or not feature_hash:
            raise DataError(f"{run_dir / FEATURE_MANIFEST}: implementation_hash missing")
        net = NumpyPolicy.load(run_dir / POLICY_FILE)
        status = str(manifest.get("status", ""))
        return cls(net, feature_hash=feature_hash, promoted=status == "promoted", run_id=run_dir.name,
                   algo=str(manifest.get("algo", "")), status=status)

    def action(self, observation: np.ndarray) -> np.ndarray:
        """SB3's deterministic action for one observation (before mapping to a weight)."""
        return self.net.predict(observation)

    def action_to_weight(self, action: Any) -> float:
        if self._levels is not None:
            return self._levels[int(np.ravel(action)[0])]
        value = float(np.ravel(action)[0])
        return min(max(value, self._low), self._high)

    def act(self, inp: Any) -> float:
        observation = getattr(inp, "observation", None)
        if observation is None:
            raise DataError(f"{self.name}: the policy needs the env observation vector, got none")
        action = self.net.predict_one(observation)  # the per-bar hot path: no batch handling
        if self._levels is not None:
            return self._levels[int(action)]
        value = float(action[0])
        return self._low if value < self._low else (self._high if value > self._high else value)

