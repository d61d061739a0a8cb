"""Honest selection for `coin train --sweep`: a trial is trained and evaluated on VALIDATION only
(`finish_validation`); the sweep ranks the trials on it, and only the best trial is then evaluated
on test and put through the promotion gate (`complete_on_test`), exactly as a single `coin train`
is, with the number of trials tried recorded beside the verdict (the best of N on validation is an
optimistic pick: the test split, unseen by the selection, is what decides).

`validation_reporter` gives Ray Tune (ASHA) a cost-aware metric at every evaluation: the Sharpe,
after fees and slippage, of the current model on the validation split, computed with the same
numpy inference and TradingEnv rollout as the final evaluation (the env reward is not comparable
across trials that search `env.reward`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coin_cli.agents import sb3 as sb3_agents
from coin_cli.config import Settings
from coin_cli.pipelines import checkpoint as ckpt
from coin_cli.pipelines import evaluate

VALIDATED = "validated"  # a trial's status: trained and ranked on validation, never traded as such


@dataclass
class RunFolder:
    """What the evaluation writers need of a Run: its folder and JSON writes."""

    dir: Path

    @property
    def run_id(self) -> str:
        return self.dir.name

    def write_json(self, name: str, obj: Any) -> Path:
        from coin_cli.fsio import atomic_write_json

        target = self.dir / name
        atomic_write_json(target, obj)
        return target


def validation_reporter(settings: Settings, dataset: Any, fold: Any,
                        report: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    """A hook for after each evaluation: the current model's validation Sharpe -> `report`."""
    from coin_cli.agents.sb3_numpy import export_policy
    from coin_cli.pipelines import train_env
    from coin_cli.pipelines.metrics import compute_metrics

    def hook(model: Any) -> None:
        if model.num_timesteps >= settings.train.timesteps:
            return  # the fold's training is done: the trial's final report follows, ASHA must not stop it here
        net = export_policy(model, model.get_vec_normalize_env())
        net.spec["weights"] = train_env.action_weights(settings)
        policy = sb3_agents.SB3Policy(net, feature_hash=dataset.feature_hash, promoted=False)
        trace, _ = train_env.rollout_trace(settings, dataset, fold.val, policy)
        metrics = compute_metrics(trace, dataset.periods_per_year)
        report({"val_sharpe": float(metrics["sharpe"]), "val_return": float(metrics["total_return"]),
                "val_turnover": float(metrics["turnover"]), "timesteps": int(model.num_timesteps),
                "fold": fold.index})

    return hook


def finish_validation(settings: Settings, run: Any, dataset: Any, folds: list[Any],
                      fold_traces: list[dict[str, dict[str, Any]]], curve: list[dict[str, Any]],
                      data: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """A trial's artifacts: the model files at the top of its folder, evaluation.json with the
    validation split only, train_manifest.json with status `validated`. Returns its summary."""
    from coin_cli.pipelines.train_rl import TIMES, env_record

    ppy = dataset.periods_per_year
    names = [name for name in fold_traces[0]["val"] if name != TIMES]
    stitched = {name: evaluate.stitch([ft["val"][name] for ft in fold_traces]) for name in names}
    val = evaluate.evaluate_split(stitched, ppy, seed=settings.train.seed)
    evaluation = {"val": val, "folds": [fold.to_dict() for fold in folds]}
    from coin_cli.fsio import atomic_write_json

    atomic_write_json(run.dir / "evaluation.json", evaluation)
    _copy_model_files(run.dir / "folds" / str(folds[-1].index), run.dir)
    ckpt.write_curve(run.dir / "training_curve.csv", curve)
    agent = val["metrics"][evaluate.AGENT]
    manifest = {
        "status": VALIDATED,
        "reasons": ["a sweep trial: ranked on validation only; the sweep evaluates its best trial on test"],
        "algo": settings.train.algo, "timesteps": settings.train.timesteps, "action": settings.env.action,
        "env": env_record(settings), "algo_params": dict(settings.train.algo_params),
        "symbol": settings.data.symbol, "interval": settings.data.interval,
        "seeds": {"seed": settings.train.seed, "fold_model_seeds": [settings.train.seed + f.index for f in folds]},
        "data": data, "folds": [f.to_dict() for f in folds], "duration_s": duration_s,
    }
    run.write_json(sb3_agents.TRAIN_MANIFEST, manifest)
    return {"status": VALIDATED, "val_sharpe": float(agent["sharpe"]), "val_return": float(agent["total_return"]),
            "val_turnover": float(agent["turnover"]), "val_fees": float(agent["fees"]),
            "val_best_baseline": val["best_baseline"],
            "val_sharpe_best_baseline": float(val["metrics"][val["best_baseline"]]["sharpe"]),
            "duration_s": duration_s}


def complete_on_test(settings: Settings, trial_dir: Path, candles: Any, data: dict[str, Any],
                     trials_tried: int) -> dict[str, Any]:
    """The best trial on test, then the promotion gate as for `coin train`: evaluation.json with
    both splits, equity_test.svg, train_manifest.json with the verdict and `trials_tried`."""
    import numpy as np

    from coin_cli.pipelines import train_env
    from coin_cli.pipelines.splits import walk_forward
    from coin_cli.pipelines.train_rl import TIMES, _finish, _load_traces, _save_traces, _train_manifest

    t = settings.train
    started = time.perf_counter()
    dataset = train_env.prepare_dataset(settings, candles)
    folds = walk_forward(len(candles), dataset.first_valid, val_fraction=t.val_fraction,
                         test_fraction=t.test_fraction, embargo=t.embargo_bars, folds=t.folds,
                         min_train=max(dataset.min_bars, 64), min_eval=dataset.min_bars)
    baselines = train_env.baseline_policies(settings)
    fold_traces = []
    for fold in folds:
        fold_dir = trial_dir / "folds" / str(fold.index)
        traces = _load_traces(fold_dir / "traces.npz")
        net = sb3_agents.NumpyPolicy.load(fold_dir / sb3_agents.POLICY_FILE)
        agent = sb3_agents.SB3Policy(net, feature_hash=dataset.feature_hash, promoted=False, algo=t.algo)
        traces["test"] = {}
        for name, policy in {evaluate.AGENT: agent, **baselines}.items():
            traces["test"][name], times = train_env.rollout_trace(settings, dataset, fold.test, policy)
        traces["test"][TIMES] = np.asarray(times)
        _save_traces(fold_dir / "traces.npz", traces)
        fold_traces.append(traces)
    curve = _read_curve(trial_dir / "training_curve.csv")
    folder = RunFolder(trial_dir)
    result = _finish(settings, folder, dataset, folds, fold_traces, curve)
    previous = _read_manifest(trial_dir)
    result.update(data={**previous.get("data", {}), **data, "candles_sha256": dataset.candles_sha256},
                  duration_s=previous.get("duration_s"), resumed_from=None)
    manifest = _train_manifest(settings, folder, folds, result)  # type: ignore[arg-type]
    manifest["promotion"]["trials_tried"] = trials_tried
    manifest["trials_tried"] = trials_tried
    manifest["selection"] = (f"best of {trials_tried} trials by validation Sharpe (optimistic on validation); "
                             "test was seen by no selection step")
    manifest["test_evaluation_s"] = round(time.perf_counter() - started, 2)
    folder.write_json(sb3_agents.TRAIN_MANIFEST, manifest)
    return manifest


def _read_curve(path: Path) -> list[dict[str, Any]]:
    """training_curve.csv back as rows of numbers (the trial wrote it)."""
    import csv

    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{key: (int(value) if key in ("fold", "timesteps") else float(value)) for key, value in row.items()}
            for row in rows]


def _read_manifest(run_dir: Path) -> dict[str, Any]:
    from coin_cli.agents.run_files import read_run_json

    return read_run_json(run_dir / sb3_agents.TRAIN_MANIFEST)


def _copy_model_files(src: Path, dst: Path) -> None:
    shutil.copyfile(src / "best_model.zip", dst / sb3_agents.MODEL_FILE)
    if (src / "best_vecnormalize.pkl").is_file():
        shutil.copyfile(src / "best_vecnormalize.pkl", dst / sb3_agents.VECNORM_FILE)
    shutil.copyfile(src / sb3_agents.POLICY_FILE, dst / sb3_agents.POLICY_FILE)
