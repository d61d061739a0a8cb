"""Feature speed: offline (vectorised) on 1,000,000 candles, online update latency, and the probe.

Targets (issue 4): offline 1M candles <= 0.25 s; online update p99 <= 20 us; `coin train --probe`
on the default data under 5 s wall and 500 MB peak memory, without importing torch.
Reference in the same run: one numpy pass (np.log of the close ratio) over the same 1M rows.

    .venv/bin/python benchmarks/bench_features.py [--rows 1000000] [--repeats 7] [--no-probe]
    .venv/bin/python -m benchmarks --only features   # against plain pandas (benchmarks/peers/pandas_features.py)

Why it is fast: every feature is a difference of a few prefix sums (spec.py), computed once in
numpy into reused scratch rows, so 1M candles cost a few dozen vectorised passes; the online
engine keeps the same running sums and `update_values` is straight-line code generated per spec
(math.log instead of numpy scalar ufuncs when they give numpy's bits), so online and offline are
bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coin_cli.features import FeatureSpec, OnlineFeatureEngine, compute_offline, compute_offline_array
from coin_cli.features.parity import parity_report

REPO = Path(__file__).resolve().parents[1]
NAME = "features"
TITLE = "2. Features: offline, online, parity, probe"
ORDER = 20


def candles(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.003, rows)))
    volume = rng.lognormal(3, 1, rows)
    volume[rng.random(rows) < 0.001] = 0.0  # some zero-volume bars, as in the real files
    return pd.DataFrame({"open_time": np.arange(rows, dtype=np.int64) * 60_000, "open": close,
                         "high": close * 1.002, "low": close * 0.998, "close": close, "volume": volume})


def timed(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def probe_run() -> tuple[float, float, str]:
    """`coin train --probe --json` in a fresh folder: wall seconds, peak RSS (MB), status."""
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COIN_", "BINANCE_", "TELEGRAM_"))}
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, "-m", "coin_cli", "train", "--probe", "--json"], cwd=folder, env=env,
                             capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        status = json.loads(out.stdout).get("status", "?") if out.stdout.strip() else f"exit {out.returncode}"
    return wall, max(peak, before) / 1024, status


def _timed_once(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> float:
    """Largest |coin - pandas| over valid rows, relative to each feature's standard deviation."""
    worst = 0.0
    for name in ours.columns:
        a, b = ours[name].to_numpy(), theirs[name].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b)
        scale = float(np.std(a[ok])) or 1.0
        worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]))) / scale if ok.any() else 0.0)
    return worst


def run_benchmark(ctx: Any) -> list[Any]:
    """Offline features of 1M candles against the same features in plain pandas (rolling windows),
    interleaved; online update latency; online/offline parity on the real excerpt; the probe."""
    from benchmarks.peers.pandas_features import pandas_features

    rows = ctx.size(1_000_000, 200_000)
    frame = candles(rows)
    arrays = [frame[c].to_numpy() for c in ("high", "low", "close", "volume")]
    spec = FeatureSpec.default()
    cmd = "python -m benchmarks --only features  (coin alone: .venv/bin/python benchmarks/bench_features.py)"
    rounds = ctx.rounds({"core": lambda: _timed_once(lambda: compute_offline_array(*arrays, spec)),
                         "frame": lambda: _timed_once(lambda: compute_offline(frame, spec)),
                         "pandas": lambda: _timed_once(lambda: pandas_features(frame, spec))},
                        repeats=ctx.repeats(5, 3))
    diff = _agreement(compute_offline(frame, spec), pandas_features(frame, spec))
    label = f"offline features, {rows:,} candles, {len(spec.names)} features"
    figs = [ctx.figure(label + " (numpy core)", rounds, "core", peer="plain pandas (rolling)", peer_key="pandas",
                       goal=("<=", 0.25), command=cmd,
                       note=f"coin and pandas agree to {diff:.1e} of each feature's std"),
            ctx.figure(label + " (DataFrame in and out)", rounds, "frame", peer="plain pandas (rolling)",
                       peer_key="pandas", command=cmd)]

    engine = OnlineFeatureEngine(spec)
    records = frame.iloc[: ctx.size(100_000, 30_000)].to_dict("records")
    clock = time.perf_counter_ns
    load0 = os.getloadavg()[0]
    latencies = np.empty(len(records))
    for i, row in enumerate(records):
        start = clock()
        engine.update(row)
        latencies[i] = clock() - start
    after = latencies[spec.warmup:] / 1e3
    online = f"online update (OnlineFeatureEngine.update, {len(records):,} candles)"
    figs.append(ctx.figure(online + ", p50", None, value=float(np.median(after)), unit="us", command=cmd))
    figs.append(ctx.figure(online + ", p99", None, value=float(np.percentile(after, 99)), unit="us",
                           goal=("<=", 20.0), command=cmd))
    for fig in figs[-2:]:
        fig.load = (load0, os.getloadavg()[0])

    real = pd.read_csv(REPO / "tests" / "data" / "binance_BTCUSDT_5m.csv").rename(columns={"open_time_ms": "open_time"})
    report = parity_report(real, spec)
    figs.append(ctx.figure(f"online vs offline parity, tests/data/binance_BTCUSDT_5m.csv ({len(real):,} rows)",
                           None, value=report["max_scaled_diff"], unit="of scale", goal=("<=", 1e-9), command=cmd,
                           note="bit-identical" if report["bit_identical"] else "not bit-identical"))

    runs = [probe_run() for _ in range(ctx.repeats(3, 1))]
    wall = statistics.median(r[0] for r in runs)
    figs.append(ctx.figure("coin train --probe, fresh folder, bootstrap 1h x 20,000: wall", None, value=wall,
                           goal=("<", 5.0), command=cmd, note=f"status {runs[0][2]}"))
    figs.append(ctx.figure("coin train --probe: peak RSS", None, value=max(r[1] for r in runs), unit="MB",
                           goal=("<", 500.0), command=cmd))
    return figs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--online-rows", type=int, default=100_000)
    parser.add_argument("--no-probe", action="store_true")
    args = parser.parse_args()

    frame = candles(args.rows)
    arrays = [frame[c].to_numpy() for c in ("high", "low", "close", "volume")]
    spec = FeatureSpec.default()
    close = arrays[2]
    ref = timed(lambda: np.log(close[1:] / close[:-1]), args.repeats)
    core = timed(lambda: compute_offline_array(*arrays, spec), args.repeats)
    full = timed(lambda: compute_offline(frame, spec), args.repeats)
    print(f"offline {args.rows:,} candles, {len(spec.names)} features: numpy core {core:.3f} s, "
          f"with the DataFrame boundary {full:.3f} s (median of {args.repeats})")
    print(f"reference: one np.log pass over the same rows {ref * 1e3:.1f} ms -> offline = {core / ref:.1f} x that")

    engine = OnlineFeatureEngine(spec)
    rows = frame.iloc[: args.online_rows].to_dict("records")
    latencies = np.empty(len(rows))
    clock = time.perf_counter_ns
    for i, row in enumerate(rows):
        start = clock()
        engine.update(row)
        latencies[i] = clock() - start
    after = latencies[spec.warmup:] / 1e3
    print(f"online update over {len(rows):,} candles: median {np.median(after):.2f} us, "
          f"p99 {np.percentile(after, 99):.2f} us, p99.9 {np.percentile(after, 99.9):.2f} us, max {after.max():.0f} us")

    if not args.no_probe:
        runs = [probe_run() for _ in range(3)]
        walls = sorted(r[0] for r in runs)
        print(f"coin train --probe (fresh folder, bootstrap 1h x 20,000): wall median {walls[1]:.2f} s "
              f"(min {walls[0]:.2f}, max {walls[2]:.2f}), peak RSS {max(r[1] for r in runs):.0f} MB, "
              f"status {runs[0][2]}")


if __name__ == "__main__":
    main()
