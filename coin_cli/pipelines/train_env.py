"""The training service's side of FEAT's TradingEnv: the dataset (candles + offline features),
vectorised training / validation envs, the policy export with the env's action->weight map, and
equity traces of any Policy stepped through the SAME TradingEnv (agent and baselines alike)."""

from __future__ import annotations

import hashlib
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.agents.sb3_numpy import NumpyPolicy, export_policy
from coin_cli.config import Settings
from coin_cli.data.schema import interval_ms
from coin_cli.pipelines.metrics import EquityTrace, bars_per_year
from coin_cli.pipelines.splits import Span

HASH_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


@dataclass
class Dataset:
    candles: Any  # the store's DataFrame
    features: np.ndarray  # (rows, n_features) float64, spec.names order
    spec: Any  # FeatureSpec
    first_valid: int  # first row with every feature valid AND a full observation window
    min_bars: int
    periods_per_year: float
    close_times: np.ndarray
    candles_sha256: str
    feature_hash: str


def prepare_dataset(settings: Settings, candles: Any) -> Dataset:
    from coin_cli.features import FeatureSpec, compute_offline

    spec = FeatureSpec.from_config(settings.features)
    features = compute_offline(candles, spec)[spec.names].to_numpy(dtype=np.float64)
    valid = np.isfinite(features).all(axis=1)
    valid_from = int(np.argmax(valid)) if valid.any() else len(features)
    digest = hashlib.sha256()
    for column in HASH_COLUMNS:
        digest.update(np.ascontiguousarray(candles[column].to_numpy()).tobytes())
    return Dataset(
        candles=candles, features=features, spec=spec,
        first_valid=valid_from + settings.env.lookback - 1,
        min_bars=max(32, settings.env.lookback + 2),
        periods_per_year=bars_per_year(interval_ms(settings.data.interval)),
        close_times=candles["close_time"].to_numpy(dtype=np.int64) if "close_time" in candles
        else candles["open_time"].to_numpy(dtype=np.int64),
        candles_sha256=digest.hexdigest(), feature_hash=spec.implementation_hash(),
    )


def feature_manifest(settings: Settings, dataset: Dataset) -> dict[str, Any]:
    from coin_cli.env.observation import ObservationBuilder
    from coin_cli.features import feature_manifest as base_manifest

    manifest = base_manifest(dataset.spec)
    builder = ObservationBuilder(dataset.spec.names, settings.env.lookback, dataset.spec)
    manifest["observation"] = {"lookback": settings.env.lookback, "size": builder.size,
                               "action": settings.env.action, "long_only": settings.env.long_only}
    return manifest


def make_env(settings: Settings, dataset: Dataset, span: Span, *, mode: str, record: bool = False) -> Any:
    from coin_cli.env.trading_env import TradingEnv

    return TradingEnv(dataset.candles, dataset.features, settings, mode=mode, spec=dataset.spec,  # type: ignore[arg-type]
                      start=span.start, end=span.end, record=record)


class _EnvFactory:
    """Picklable env constructor for SubprocVecEnv workers. Workers ignore SIGINT so that
    Ctrl-C reaches only the trainer, which then saves a checkpoint with the envs still alive."""

    def __init__(self, settings: Settings, dataset: Dataset, span: Span, mode: str, in_subprocess: bool):
        self.settings, self.dataset, self.span, self.mode = settings, dataset, span, mode
        self.in_subprocess = in_subprocess

    def __call__(self) -> Any:
        from stable_baselines3.common.monitor import Monitor

        if self.in_subprocess:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return Monitor(make_env(self.settings, self.dataset, self.span, mode=self.mode))


def make_train_vec_env(settings: Settings, dataset: Dataset, span: Span, *, seed: int) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    n_envs = settings.train.n_envs
    factories = [_EnvFactory(settings, dataset, span, "train", n_envs > 1) for _ in range(n_envs)]
    venv = SubprocVecEnv(factories) if n_envs > 1 else DummyVecEnv(factories)
    venv.seed(seed)
    if settings.train.vecnormalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0)
    return venv


def make_eval_vec_env(settings: Settings, dataset: Dataset, span: Span) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = DummyVecEnv([_EnvFactory(settings, dataset, span, "eval", False)])
    if settings.train.vecnormalize:
        venv = VecNormalize(venv, training=False, norm_obs=True, norm_reward=False, clip_obs=10.0)
    return venv


def export_for_env(settings: Settings, model: Any, vecnorm_path: Path | None) -> NumpyPolicy:
    """The numpy policy plus the env's action -> target weight map (so SB3Policy speaks weights)."""
    import pickle

    vecnorm = None
    if vecnorm_path is not None:
        with open(vecnorm_path, "rb") as fh:  # our own file, written by VecNormalize.save
            vecnorm = pickle.load(fh)
    net = export_policy(model, vecnorm)
    net.spec["weights"] = action_weights(settings)
    return net


def action_weights(settings: Settings) -> dict[str, Any]:
    """How TradingEnv turns an action into a target weight: Discrete i -> `action_levels` (the
    same function the env calls); Box -> the value, clipped to [low, 1]."""
    from coin_cli.env.execution import ExecutionModel, ExecutionParams, action_levels

    low = ExecutionModel(ExecutionParams.from_settings(settings)).min_weight
    if settings.env.action == "discrete":
        return {"levels": action_levels(settings.env.discrete_levels, low)}
    return {"low": low, "high": 1.0}


def baseline_policies(settings: Settings) -> dict[str, Any]:
    from coin_cli.agents.baselines import BASELINES, baseline_from_settings

    return {name: baseline_from_settings(name, settings) for name in BASELINES}


def rollout_trace(settings: Settings, dataset: Dataset, span: Span, policy: Any) -> tuple[EquityTrace, np.ndarray]:
    """Step `policy` through an evaluation TradingEnv over `span` with FEAT's rollout: per-bar
    equity and costs, and the close time of every equity point."""
    from coin_cli.env.rollout import rollout

    env = make_env(settings, dataset, span, mode="eval", record=True)
    cols = rollout(env, policy).trace
    first = env.first_bar
    equity = np.concatenate([[float(settings.env.initial_cash)], np.asarray(cols["equity"], dtype=np.float64)])
    traded = np.abs(np.asarray(cols["traded_qty"], dtype=np.float64))
    notional = traded * np.asarray(cols["fill_price"], dtype=np.float64)
    weight = np.asarray(cols["position"], dtype=np.float64)
    fees = np.asarray(cols["fee"], dtype=np.float64)
    # The ruin stop ends the episode early: the policy stays ruined, flat at its last equity, for
    # the rest of the split, so every policy is compared over the same bars.
    missing = (env.stop_bar - first) - weight.size
    ruined = np.zeros(weight.size + max(missing, 0), dtype=bool)
    if missing > 0:
        ruined[weight.size:] = True
        equity = np.concatenate([equity, np.full(missing, equity[-1])])
        weight, fees, notional, traded = (np.concatenate([a, np.zeros(missing)]) for a in (weight, fees, notional,
                                                                                            traded))
    trace = EquityTrace(equity=equity, weight=weight, fees=fees, traded_notional=notional,
                        fills=(traded > 0).astype(np.int64), ruined=ruined)
    times = dataset.close_times[first:first + equity.size]
    return trace, times
