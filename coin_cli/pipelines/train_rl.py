"""`coin train`: stable-baselines3 training with walk-forward folds, validation-based model
selection, honest test evaluation against the baselines, the promotion gate, and artifacts.

Flow: settings -> candles (load_or_bootstrap) -> features -> folds (splits.walk_forward) ->
per fold: train on the train span with EvalCallback on the validation span, keep the best model
(with its VecNormalize statistics), export it to numpy, roll the agent and the baselines through
the SAME TradingEnv on validation and test -> stitch folds -> evaluate -> promotion gate ->
artifacts. Ctrl-C during training saves a checkpoint and re-raises (the run ends `interrupted`);
`--resume RUN_ID` continues from it in a new run folder.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.agents import sb3 as sb3_agents
from coin_cli.config import Settings
from coin_cli.errors import UsageError
from coin_cli.pipelines import checkpoint as ckpt
from coin_cli.pipelines import evaluate
from coin_cli.pipelines.metrics import EquityTrace
from coin_cli.pipelines.splits import Fold, walk_forward
from coin_cli.runs import Run

log = logging.getLogger("coin.train")

Progress = Callable[[int, int | None, str | None], None]
TRACE_FIELDS = ("equity", "weight", "fees", "traded_notional", "fills", "ruined")
TIMES = "times"  # per split: close time (ms) of every equity point, stored beside the traces


def check_request(settings: Settings) -> None:
    """Flag combinations that cannot work, as UsageError (exit 2) before any run folder exists."""
    sb3_agents.check_algo_action(settings.train.algo, settings.env.action)
    sb3_agents.check_algo_params(settings.train.algo, settings.train.algo_params)
    if settings.env.action == "discrete":
        from coin_cli.env.execution import action_levels

        try:
            action_levels(settings.env.discrete_levels, 0.0 if settings.env.long_only else -1.0)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if settings.train.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None


def prepare_settings(settings: Settings, resume: str | None, flags_given: list[str]) -> Settings:
    """The settings to train with: the interrupted run's own settings for --resume (only
    --timesteps may change them), else `settings`. Validates the request either way."""
    if resume is not None:
        settings = ckpt.resume_settings(settings, resume, flags_given)
    check_request(settings)
    return settings


def train(settings: Settings, run: Run, progress: Progress | None = None, resume: str | None = None, *,
          data: tuple[Any, dict[str, Any], bool] | None = None, evaluate_test: bool = True,
          on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, evaluate, gate. A sweep trial passes `data` (candles, their manifest, generated: the
    candles come from Ray's object store, not from a store), `evaluate_test=False` (trials are
    ranked on validation only; the sweep evaluates its best trial on test afterwards) and
    `on_evaluation`, called with the validation Sharpe of the current model at every evaluation."""
    from coin_cli.pipelines import train_env

    t = settings.train
    started = time.perf_counter()
    state = ckpt.load_state(settings, resume, run) if resume else None

    if data is None:
        from coin_cli.data.service import load_or_bootstrap

        data = load_or_bootstrap(settings)
    candles, data_manifest, generated = data
    dataset = train_env.prepare_dataset(settings, candles)
    folds = walk_forward(len(candles), dataset.first_valid, val_fraction=t.val_fraction,
                         test_fraction=t.test_fraction, embargo=t.embargo_bars, folds=t.folds,
                         min_train=max(dataset.min_bars, 64), min_eval=dataset.min_bars)
    manifest = train_env.feature_manifest(settings, dataset)
    from coin_cli.monitoring.drift import reference_quantiles  # the runtime's drift reference

    last_train = folds[-1].train
    manifest["drift_reference"] = reference_quantiles(dataset.features[last_train.start:last_train.end],
                                                      dataset.spec.names)
    run.write_json(sb3_agents.FEATURE_MANIFEST, manifest)
    _deterministic_torch()  # after the cheap checks: torch costs seconds to import

    curve: list[dict[str, Any]] = list(state.curve) if state else []
    total = t.timesteps * len(folds)
    fold_traces: list[dict[str, dict[str, EquityTrace]]] = []
    for fold in folds:
        fold_dir = run.dir / "folds" / str(fold.index)
        if state and fold.index < state.fold:
            fold_traces.append(_load_traces(fold_dir / "traces.npz"))
            continue
        resume_here = state if state and fold.index == state.fold else None
        try:
            traces = _train_fold(settings, run, dataset, fold, fold_dir, curve, progress, total, resume_here,
                                 splits=evaluate.SPLITS if evaluate_test else ("val",), on_evaluation=on_evaluation)
        except KeyboardInterrupt as exc:
            # outside model.learn (env start-up, evaluation): resume restarts this fold
            if not ckpt.has_checkpoint(run):
                ckpt.save_fold_boundary(run, fold.index, curve)
            # Ctrl-C or SIGTERM (Terminated keeps its type): say what was kept and what to do next
            raise type(exc)(f"checkpoint saved: coin train --resume {run.run_id}") from None
        _save_traces(fold_dir / "traces.npz", traces)
        fold_traces.append(traces)

    if not evaluate_test:
        from coin_cli.pipelines.train_select import finish_validation

        return finish_validation(settings, run, dataset, folds, fold_traces, curve, {
            "rows": len(candles), "source": data_manifest.get("source"), "bootstrap_generated": generated,
            "store_sha256": data_manifest.get("sha256"), "candles_sha256": dataset.candles_sha256},
            round(time.perf_counter() - started, 2))
    result = _finish(settings, run, dataset, folds, fold_traces, curve)
    result.update(
        data={"rows": len(candles), "source": data_manifest.get("source"), "bootstrap_generated": generated,
              "store_sha256": data_manifest.get("sha256"), "candles_sha256": dataset.candles_sha256},
        duration_s=round(time.perf_counter() - started, 2),
        resumed_from=resume,
    )
    manifest = _train_manifest(settings, run, folds, result)
    run.write_json(sb3_agents.TRAIN_MANIFEST, manifest)
    return _summary(settings, run, manifest, result)


# ---- one fold --------------------------------------------------------------------------------

def _train_fold(settings: Settings, run: Run, dataset: Any, fold: Fold, fold_dir: Path, curve: list[dict[str, Any]],
                progress: Progress | None, total: int, state: ckpt.TrainState | None,
                splits: tuple[str, ...] = evaluate.SPLITS,
                on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    from stable_baselines3.common.callbacks import CallbackList, EvalCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from coin_cli.pipelines import train_env
    from coin_cli.pipelines.train_callbacks import CurveCallback, ProgressCallback, SaveNormalizationCallback

    t = settings.train
    fold_dir.mkdir(parents=True, exist_ok=True)
    seed = t.seed + fold.index
    venv = train_env.make_train_vec_env(settings, dataset, fold.train, seed=seed)
    eval_env = train_env.make_eval_vec_env(settings, dataset, fold.val)
    try:
        if state is not None and state.has_model:
            model, venv = ckpt.restore_model(settings, state, venv)
            done = int(model.num_timesteps)
        else:
            model = sb3_agents.build_model(t.algo, venv, seed=seed, timesteps=t.timesteps, n_envs=t.n_envs,
                                           tensorboard_log=run.dir / "tensorboard" if t.tensorboard else None,
                                           params=t.algo_params)
            done = 0
        label = f"fold {fold.index + 1}/{t.folds} {t.algo}"
        progress_cb = ProgressCallback(progress, offset=fold.index * t.timesteps, total=total, label=label)
        best_norm = fold_dir / "best_vecnormalize.pkl"
        after_eval = None
        if on_evaluation is not None:
            from coin_cli.pipelines.train_select import validation_reporter

            after_eval = validation_reporter(settings, dataset, fold, on_evaluation)
        curve_cb = CurveCallback(fold.index, curve, progress_cb, after_eval=after_eval)
        evaluator = EvalCallback(
            eval_env, callback_on_new_best=SaveNormalizationCallback(best_norm),
            callback_after_eval=curve_cb, n_eval_episodes=1,
            eval_freq=max(1, t.eval_freq // t.n_envs), best_model_save_path=str(fold_dir), deterministic=True,
            verbose=0, warn=False,
        )
        if state is not None:
            evaluator.best_mean_reward = state.best_mean_reward
        try:
            model.learn(t.timesteps - done, callback=CallbackList([progress_cb, evaluator]),
                        reset_num_timesteps=state is None, tb_log_name=f"fold{fold.index}")
        except KeyboardInterrupt:
            ckpt.save_checkpoint(run, model, fold.index, curve, float(evaluator.best_mean_reward))
            raise
        progress_cb.report()
        # the final model competes with the periodic evaluations (a short run may have none)
        # (EvalCallback fills evaluations_timesteps only with a log_path: the curve rows say it)
        evaluated = [row["timesteps"] for row in curve if row["fold"] == fold.index]
        if not evaluated or evaluated[-1] != model.num_timesteps:
            sync_envs_normalization(venv, eval_env)
            final_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=1, deterministic=True, warn=False)
            curve_cb.add_row(model, float(final_reward), max(float(final_reward), float(evaluator.best_mean_reward)))
            if after_eval is not None:
                after_eval(model)
        else:
            final_reward = float("-inf")
        if float(final_reward) > evaluator.best_mean_reward or not (fold_dir / "best_model.zip").is_file():
            model.save(str(fold_dir / "best_model.zip"))
            if model.get_vec_normalize_env() is not None:
                model.get_vec_normalize_env().save(str(best_norm))
    finally:
        venv.close()
        eval_env.close()

    best = sb3_agents.load_model(t.algo, fold_dir / "best_model.zip")
    net = train_env.export_for_env(settings, best, best_norm if best_norm.is_file() else None)
    net.save(fold_dir / sb3_agents.POLICY_FILE)
    agent = sb3_agents.SB3Policy(net, feature_hash=dataset.feature_hash, promoted=False, algo=t.algo)
    policies = {evaluate.AGENT: agent, **train_env.baseline_policies(settings)}
    traces: dict[str, dict[str, EquityTrace]] = {}
    for split, span in (("val", fold.val), ("test", fold.test)):
        if split not in splits:
            continue
        traces[split] = {}
        for name, policy in policies.items():
            traces[split][name], times = train_env.rollout_trace(settings, dataset, span, policy)
        traces[split][TIMES] = times  # type: ignore[assignment]
    return traces


# ---- aggregation, artifacts --------------------------------------------------------------------

def _finish(settings: Settings, run: Run, dataset: Any, folds: list[Fold],
            fold_traces: list[dict[str, dict[str, EquityTrace]]], curve: list[dict[str, Any]]) -> dict[str, Any]:
    from coin_cli.report.charts import curve_chart, equity_lines_chart

    ppy = dataset.periods_per_year
    evaluation: dict[str, Any] = {}
    stitched: dict[str, dict[str, EquityTrace]] = {}
    for split in evaluate.SPLITS:
        names = [name for name in fold_traces[0][split] if name != TIMES]
        stitched[split] = {name: evaluate.stitch([ft[split][name] for ft in fold_traces]) for name in names}
        evaluation[split] = evaluate.evaluate_split(stitched[split], ppy, seed=settings.train.seed)
    decision = evaluate.promotion_decision(evaluation, settings.train.promotion_margin)
    evaluation["promotion"] = decision
    evaluation["folds"] = [fold.to_dict() for fold in folds]
    evaluate.write_evaluation(run.dir, evaluation)

    # fold k > 0 continues the stitched curve: its first point (the start equity) is dropped
    times = np.concatenate([ft["test"][TIMES][1 if i else 0:] for i, ft in enumerate(fold_traces)])  # type: ignore[index]
    lines = {name: trace.equity.tolist() for name, trace in stitched["test"].items()}
    title = (f"{settings.data.symbol} {settings.data.interval}, test split: agent ({settings.train.algo}) "
             f"vs baselines, after fees and slippage")
    starts = [int(ft["test"][TIMES][0]) for ft in fold_traces[1:]]  # type: ignore[index]
    equity_lines_chart(run.dir / "equity_test.svg", title, times.tolist(), lines, boundaries_ms=starts)
    curve_chart(run.dir / "training_curve.svg", curve, "training curve: validation reward per evaluation")

    last = run.dir / "folds" / str(folds[-1].index)
    shutil.copyfile(last / "best_model.zip", run.dir / sb3_agents.MODEL_FILE)
    if (last / "best_vecnormalize.pkl").is_file():
        shutil.copyfile(last / "best_vecnormalize.pkl", run.dir / sb3_agents.VECNORM_FILE)
    shutil.copyfile(last / sb3_agents.POLICY_FILE, run.dir / sb3_agents.POLICY_FILE)
    ckpt.write_curve(run.dir / "training_curve.csv", curve)
    return {"evaluation": evaluation, "promotion": decision}


def _train_manifest(settings: Settings, run: Run, folds: list[Fold], result: dict[str, Any]) -> dict[str, Any]:
    t = settings.train
    decision = result["promotion"]
    artifacts = [name for name in (sb3_agents.MODEL_FILE, sb3_agents.VECNORM_FILE, sb3_agents.POLICY_FILE,
                                   sb3_agents.FEATURE_MANIFEST, "training_curve.csv", "evaluation.json",
                                   "evaluation.csv", "equity_test.svg", "config.yaml") if (run.dir / name).is_file()]
    return {
        "status": decision["status"],
        "reasons": decision["reasons"],
        "promotion": decision,
        "algo": t.algo,
        "timesteps": t.timesteps,
        "n_envs": t.n_envs,
        "vecnormalize": t.vecnormalize,
        "action": settings.env.action,
        # what the model was trained and evaluated with; `coin trade` takes trade_band from here
        "env": env_record(settings),
        "algo_params": dict(t.algo_params),
        "symbol": settings.data.symbol,
        "interval": settings.data.interval,
        "seeds": {"seed": t.seed, "fold_model_seeds": [t.seed + f.index for f in folds],
                  "bootstrap_ci_seed": t.seed, "data_bootstrap_seed": settings.data.bootstrap_seed},
        "data": result["data"],
        "folds": [f.to_dict() for f in folds],
        "artifacts": artifacts,
        "resumed_from": result["resumed_from"],
        "duration_s": result["duration_s"],
    }


def env_record(settings: Settings) -> dict[str, Any]:
    """The env settings a model was trained and evaluated with (`coin trade` reads trade_band)."""
    e = settings.env
    return {"trade_band": e.trade_band, "reward": e.reward, "reward_coef": e.reward_coef,
            "discrete_levels": e.discrete_levels, "fee_bps": e.fee_bps, "slippage_bps": e.slippage_bps}


def _summary(settings: Settings, run: Run, manifest: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    test = result["evaluation"]["test"]
    val = result["evaluation"]["val"]
    return {
        "status": manifest["status"],
        "algo": manifest["algo"],
        "timesteps": manifest["timesteps"],
        "folds": len(manifest["folds"]),
        "symbol": manifest["symbol"],
        "interval": manifest["interval"],
        "val_sharpe_agent": val["metrics"][evaluate.AGENT]["sharpe"],
        "val_best_baseline": val["best_baseline"],
        "val_sharpe_best_baseline": val["metrics"][val["best_baseline"]]["sharpe"],
        "test_sharpe_agent": test["metrics"][evaluate.AGENT]["sharpe"],
        "test_best_baseline": test["best_baseline"],
        "test_sharpe_best_baseline": test["metrics"][test["best_baseline"]]["sharpe"],
        "test_sharpe_diff_ci": [test["sharpe_diff"]["low"], test["sharpe_diff"]["high"]],
        "promotion_margin": settings.train.promotion_margin,
        "reasons": manifest["reasons"],
        "model": str(run.dir / sb3_agents.MODEL_FILE),
        "duration_s": manifest["duration_s"],
        "evaluation": {split: result["evaluation"][split] for split in evaluate.SPLITS},
    }


def _save_traces(path: Path, traces: dict[str, dict[str, Any]]) -> None:
    from coin_cli.fsio import atomic_write_with

    arrays: dict[str, np.ndarray] = {}
    for split, by_name in traces.items():
        for name, trace in by_name.items():
            if name == TIMES:
                arrays[f"{split}.{TIMES}.ms"] = np.asarray(trace)
            else:
                arrays.update({f"{split}.{name}.{field}": getattr(trace, field) for field in TRACE_FIELDS
                               if getattr(trace, field) is not None})
    atomic_write_with(path, lambda fh: np.savez(fh, **arrays))


def _load_traces(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    with np.load(path) as data:
        for key in data.files:
            split, name, field = key.split(".")
            out.setdefault(split, {}).setdefault(name, {})[field] = data[key]
    return {split: {name: fields["ms"] if name == TIMES else EquityTrace(**fields) for name, fields in by_name.items()}
            for split, by_name in out.items()}


def _deterministic_torch() -> None:
    """Same seed + one env + same data -> the same numbers: single-threaded, deterministic kernels."""
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)


def summary_rows(summary: dict[str, Any]) -> dict[str, Any]:
    """The key/value lines of the human summary table."""
    ci = summary["test_sharpe_diff_ci"]
    rows = {
        "status": summary["status"],
        "algo / timesteps / folds": f"{summary['algo']} / {summary['timesteps']:,} / {summary['folds']}",
        "symbol / interval": f"{summary['symbol']} {summary['interval']}",
        "val Sharpe: agent vs best baseline": _versus(summary, "val"),
        "test Sharpe: agent vs best baseline": _versus(summary, "test"),
        "test Sharpe difference, 95% CI": f"[{ci[0]:+.3f}, {ci[1]:+.3f}]",
        "promotion margin": summary["promotion_margin"],
        "model": summary["model"],
        "seconds": summary["duration_s"],
    }
    for i, reason in enumerate(summary["reasons"], 1):
        rows[f"not promoted ({i})"] = reason
    return rows


def _versus(summary: dict[str, Any], split: str) -> str:
    best = summary[f"{split}_best_baseline"]
    return f"{summary[f'{split}_sharpe_agent']:.3f} vs {summary[f'{split}_sharpe_best_baseline']:.3f} ({best})"
