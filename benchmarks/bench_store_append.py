"""What paper/live pay to keep the stream's candles in the store (CandleRecorder, issue 13's leftover).

    .venv/bin/python benchmarks/bench_store_append.py [--sizes 10000 100000 500000] [--repeats 5]

A merge into the store rewrites the dataset file (parquet, atomically), so its cost grows with the
store. For each store size: the median wall time of merging ONE new closed candle (DatasetWriter.add,
what CandleRecorder.flush does), on a real parquet store in a temporary folder. The runtime does it
in the bar loop's thread, between bars. Before: at every ledger commit (every bar of a live
stream); now: at most once a minute. Per bar of a 1s stream that is the merge / 1 before and the
merge / 60 now; a 1m stream merges once per bar either way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from coin_cli.data.store import CandleStore

SECOND = 1000


def candles(start: int, n: int) -> pd.DataFrame:
    close = 100.0 + np.cumsum(np.random.default_rng(n).normal(0, 0.1, n))
    return pd.DataFrame({"open_time": start + np.arange(n, dtype=np.int64) * SECOND, "open": close,
                         "high": close + 0.1, "low": close - 0.1, "close": close, "volume": np.full(n, 1.0)})


def merge_one_ms(size: int, repeats: int) -> float:
    with tempfile.TemporaryDirectory(prefix="coin-bench-store-") as tmp:
        store = CandleStore(Path(tmp), "binance")
        store.merge("BTCUSDT", "1s", candles(0, size), "csv")
        writer = store.writer("BTCUSDT", "1s", "binance-stream")
        times = []
        for i in range(repeats + 1):    # the first merge warms the writer up
            bar = candles((size + i) * SECOND, 1)
            began = time.perf_counter()
            writer.add(bar)
            if i:
                times.append(time.perf_counter() - began)
        return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        ms = merge_one_ms(size, args.repeats)
        rows.append({"store_rows": size, "merge_one_candle_ms": round(ms, 1),
                     "per_1s_bar_before_ms": round(ms, 1), "per_1s_bar_now_ms": round(ms / 60, 2)})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
