"""`coin train --probe`: the end-to-end readiness gate.

The original pipeline, step by step: candles from the store (bootstrap candles when there are
none), features, time-ordered splits and a NaN summary, the online/offline parity check, the
environment checker, and one VolTarget rollout through TradingEnv (buy-and-hold beside it for the
chart). Every check that fails adds a reason and the status becomes `blocked` (exit 5).

Writes into the run folder: data_manifest.json, feature_manifest.json, dataset_summary.json,
train_probe_summary.json, train_probe/trace.csv, train_probe/reward_equity.svg, train_manifest.json.
Never imports torch or stable_baselines3.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.errors import CoinError

if TYPE_CHECKING:
    import pandas as pd

    from coin_cli.config import Settings
    from coin_cli.runs import Run

log = logging.getLogger("coin.train")
Progress = Callable[[int, int | None, str | None], None]
STEPS = 6
TICK_PRICE_RATIO = 1e-3  # a tick larger than this share of the lowest price distorts every fill


def run_probe(settings: Settings, run: Run, progress: Progress | None = None) -> dict[str, Any]:
    """Run the probe, write its files, return the summary (status `ready` or `blocked`)."""
    from coin_cli.data.service import load_or_bootstrap
    from coin_cli.features import FeatureSpec, compute_offline_array, feature_manifest

    started = time.perf_counter()
    report = progress or (lambda done, total=None, text=None: None)
    reasons: list[str] = []

    report(0, STEPS, "loading candles")
    candles, store_manifest, generated = load_or_bootstrap(settings)
    data_manifest = _data_manifest(settings, store_manifest, generated, candles)
    run.write_json("data_manifest.json", data_manifest)

    report(1, STEPS, "features")
    spec = FeatureSpec.from_config(settings.features)
    features = compute_offline_array(*(candles[c].to_numpy(np.float64) for c in ("high", "low", "close", "volume")),
                                     spec, open_time=candles["open_time"].to_numpy())
    f_manifest = feature_manifest(spec)
    f_manifest["observation"] = {"lookback": settings.env.lookback, "action": settings.env.action,
                                 "long_only": settings.env.long_only}
    run.write_json("feature_manifest.json", f_manifest)

    report(2, STEPS, "dataset splits")
    dataset = _dataset_summary(settings, spec, features, candles, reasons)
    run.write_json("dataset_summary.json", dataset)

    report(3, STEPS, "online/offline parity")
    from coin_cli.features.parity import parity_report

    parity = parity_report(candles, spec, features)
    if not parity["passed"]:
        worst = max(parity["features"].items(), key=lambda kv: kv[1]["max_scaled_diff"])
        reasons.append(f"online/offline feature parity failed: {worst[0]} differs by {worst[1]['max_scaled_diff']:.3g} "
                       f"of its scale (limit {parity['tolerance']:g})")
    _check_tick(settings, candles, reasons)

    report(4, STEPS, "environment check")
    env_check = _check_env(settings, candles, features, spec, dataset, reasons)

    report(5, STEPS, "VolTarget rollout")
    probe = _probe_rollout(settings, run, candles, features, spec, reasons)

    status = "blocked" if reasons else "ready"
    summary: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "symbol": settings.data.symbol,
        "interval": settings.data.interval,
        "source": data_manifest["source"],
        "bootstrap_generated": generated,
        "rows": len(candles),
        "splits": {name: split["bars"] for name, split in dataset.get("splits", {}).items()},
        "feature_hash": f_manifest["implementation_hash"],
        "parity_max_scaled_diff": parity["max_scaled_diff"],
        "parity_bit_identical": parity["bit_identical"],
        "env_check": env_check["status"],
        "probe": probe,
        "duration_s": round(time.perf_counter() - started, 3),
    }
    run.write_json("train_probe_summary.json", probe)
    manifest = {"status": status, "reasons": reasons, "probe": probe, "parity": parity, "env_check": env_check,
                "feature_hash": f_manifest["implementation_hash"], "data_sha256": data_manifest.get("sha256")}
    if not reasons:
        manifest.pop("reasons")
    run.write_json("train_manifest.json", manifest)
    report(STEPS, STEPS, status)
    if reasons:
        run.set_outcome("blocked", 5)
        for reason in reasons:
            log.warning("probe blocked: %s", reason)
    return summary


# -- the steps ----------------------------------------------------------------------------------

def _data_manifest(settings: Settings, store: dict[str, Any], generated: bool, candles: pd.DataFrame) -> dict[str, Any]:
    gaps = store.get("gaps") or {}
    times = candles["open_time"].to_numpy()
    return {
        "source": store.get("source") or ("bootstrap" if generated else "unknown"),
        "bootstrap_generated": generated,
        "exchange": settings.data.exchange,
        "symbol": settings.data.symbol,
        "interval": settings.data.interval,
        "rows": len(candles),
        "coverage": {"first": store.get("first"), "last": store.get("last"),
                     "first_open_time": int(times[0]) if len(times) else None,
                     "last_open_time": int(times[-1]) if len(times) else None},
        "gaps": {"events": gaps.get("events", 0), "missing_bars": gaps.get("missing_bars", 0),
                 "largest": gaps.get("largest"), "list": gaps.get("list", [])},
        "zero_volume": store.get("zero_volume"),
        "path": store.get("path"),
        "sha256": store.get("sha256"),
    }


def _dataset_summary(settings: Settings, spec: Any, features: np.ndarray, candles: pd.DataFrame,
                     reasons: list[str]) -> dict[str, Any]:
    from coin_cli.pipelines.splits import walk_forward

    t = settings.train
    rows = len(candles)
    first_valid = spec.warmup + settings.env.lookback - 1
    summary: dict[str, Any] = {"rows": rows, "warmup": spec.warmup, "lookback": settings.env.lookback,
                               "first_valid_bar": first_valid, "embargo_bars": t.embargo_bars,
                               "val_fraction": t.val_fraction, "test_fraction": t.test_fraction}
    if rows < t.min_rows:
        reasons.append(f"too few candles: {rows} < train.min_rows {t.min_rows}")
    times = candles["open_time"].to_numpy()
    try:
        fold = walk_forward(rows, min(first_valid, rows), val_fraction=t.val_fraction,
                            test_fraction=t.test_fraction, embargo=t.embargo_bars, folds=1)[0]
        summary["splits"] = {
            name: {"start": span.start, "end": span.end, "bars": span.bars,
                   "first_open_time": int(times[span.start]), "last_open_time": int(times[span.end - 1])}
            for name, span in (("train", fold.train), ("val", fold.val), ("test", fold.test))}
    except CoinError as exc:
        reasons.append(f"too few rows for the splits: {exc}")
        summary["splits"] = {}
    after = features[spec.warmup:]
    nan_ratio = {name: (float(np.isnan(after[:, j]).mean()) if len(after) else 1.0)
                 for j, name in enumerate(spec.names)}
    summary["nan_ratio_after_warmup"] = nan_ratio
    summary["max_nan_ratio"] = t.max_nan_ratio
    over = {name: ratio for name, ratio in nan_ratio.items() if ratio > t.max_nan_ratio}
    if over:
        listed = ", ".join(f"{name} {ratio:.1%}" for name, ratio in over.items())
        reasons.append(f"NaN ratio after warm-up over train.max_nan_ratio {t.max_nan_ratio:g}: {listed}")
    return summary


def _check_tick(settings: Settings, candles: pd.DataFrame, reasons: list[str]) -> None:
    lowest = float(candles["low"].min()) if len(candles) else 0.0
    tick = settings.env.tick_size
    if lowest > 0 and tick > TICK_PRICE_RATIO * lowest:
        reasons.append(f"env.tick_size {tick:g} is too coarse for prices down to {lowest:g} "
                       f"(set env.tick_size to the symbol's PRICE_FILTER tickSize)")


def _check_env(settings: Settings, candles: pd.DataFrame, features: np.ndarray, spec: Any,
               dataset: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    from gymnasium.utils.env_checker import check_env

    from coin_cli.env.trading_env import TradingEnv

    train = dataset.get("splits", {}).get("train")
    start, end = (train["start"], train["end"]) if train else (0, None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            env = TradingEnv(candles, features, settings, mode="train", spec=spec, start=start, end=end)
            check_env(env, skip_render_check=True)
    except Exception as exc:  # the checker raises assertion and type errors: each is a reason
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reasons.append(f"environment check failed: {message}")
        return {"status": "failed", "error": message}
    return {"status": "passed", "warnings": sorted({str(w.message).splitlines()[0] for w in caught})}


def _probe_rollout(settings: Settings, run: Run, candles: pd.DataFrame, features: np.ndarray, spec: Any,
                   reasons: list[str]) -> dict[str, Any]:
    from coin_cli.agents.baselines import BuyAndHold, baseline_from_settings
    from coin_cli.env.recorder import Recorder
    from coin_cli.env.rollout import rollout
    from coin_cli.env.trading_env import TradingEnv

    trace_path = run.path("train_probe", "trace.csv")
    chart_path = run.path("train_probe", "reward_equity.svg")
    try:
        policy = baseline_from_settings("voltarget", settings)
        env = TradingEnv(candles, features, settings, mode="eval", spec=spec)
    except (ValueError, CoinError) as exc:
        reasons.append(f"VolTarget rollout impossible: {exc}")
        Recorder().write_csv(trace_path)
        _write_chart(chart_path, settings, [], {}, {})
        return {"steps": 0, "error": str(exc)}
    result = rollout(env, policy)
    result.recorder.write_csv(trace_path)
    # buy-and-hold over the same bars, without the ruin stop, to compare against on the chart
    hold_cfg = settings.env.model_copy(update={"ruin_fraction": 0.0})
    hold_env = TradingEnv(candles, features, hold_cfg, mode="eval", spec=spec)
    hold = rollout(hold_env, BuyAndHold())
    vol_cols, hold_cols = result.trace, hold.trace
    _write_chart(chart_path, settings, vol_cols["open_time"], vol_cols, hold_cols)
    summary = dict(result.summary)
    summary["buyhold_final_equity"] = hold.summary["final_equity"]
    summary["buyhold_total_reward"] = hold.summary["total_reward"]
    if not math.isfinite(summary["final_equity"]):
        reasons.append("VolTarget rollout produced a non-finite equity")
    return summary


def _write_chart(path: Any, settings: Settings, times: list[int], vol: dict[str, list[Any]],
                 hold: dict[str, list[Any]]) -> None:
    from coin_cli.report.charts import equity_lines_chart

    n = len(times)
    cumulative = np.cumsum(vol.get("reward", [])).tolist() if n else []
    hold_cum = np.cumsum(hold.get("reward", [])).tolist() if n else []
    lines = {"VolTarget": vol.get("equity", []), "buy and hold": hold.get("equity", [])[:n]}
    title = f"train probe: {settings.data.symbol} {settings.data.interval}, VolTarget vs buy and hold"
    equity_lines_chart(path, title, times, lines, ylabel="equity (quote currency)",
                       second=("cumulative reward (log growth)",
                               {"VolTarget": cumulative, "buy and hold": hold_cum[:n]}))
