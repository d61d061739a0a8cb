"""Feature speed: offline (vectorised) on 1,000,000 candles, online update latency, and the probe.

Targets (issue 4): offline 1M candles <= 0.25 s; online update p99 <= 20 us; `coin train --probe`
on the default data under 5 s wall and 500 MB peak memory, without importing torch.
Reference in the same run: one numpy pass (np.log of the close ratio) over the same 1M rows.

    .venv/bin/python benchmarks/bench_features.py [--rows 1000000] [--repeats 7] [--no-probe]
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

import numpy as np
import pandas as pd

from coin_cli.features import FeatureSpec, OnlineFeatureEngine, compute_offline, compute_offline_array

REPO = Path(__file__).resolve().parents[1]


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
