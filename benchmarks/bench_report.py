"""`coin report` on a 1,000,000-bar replay (target: under 10 s), and what the end of a trade run
costs (figures + equity.svg).

Builds the run once through the real commands: `coin data bootstrap --rows 1000000 --interval 1m`
and `coin trade --mode replay` (about 30 s on the 2-core machine), then measures, median of
--repeats:
- `coin report RUN_ID` as a subprocess (reads summary.json's figures and equity.svg);
- the same on a copy without them (a run from before they were stored: the page recomputes the
  figures from metrics.jsonl and redraws the chart: the worst case);
- in process: reading metrics.jsonl with pyarrow (what coin uses) against json.loads per line
  (the reference), the figures, and drawing the decimated chart.

    .venv/bin/python benchmarks/bench_report.py [--rows 1000000] [--repeats 3]
    .venv/bin/python -m benchmarks --only report

Why the worst case stays near 3 s per million bars: metrics.jsonl is read with pyarrow's JSON
reader (~4x json.loads per line), and every curve is min/max-decimated to 1,600 pixel columns
(the lowest and highest point of each, in time order, so a one-bar crash survives) before
matplotlib sees it; buy/sell markers are thinned to 4,000 each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "report"
TITLE = "8. coin report on a long replay"
ORDER = 80


def coin(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "coin_cli", "--runs-dir", "r", "--data-dir", "d", *args],
                         cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if out.returncode not in (0, 5):
        raise SystemExit(f"coin {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return elapsed, [ln for ln in out.stdout.splitlines() if ln.strip()][-1]


def json_loads_reference(path: Path) -> int:
    n = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith('{"bar"'):
                rec = json.loads(line)
                n += rec["bar"] > 0
    return n


def run_benchmark(ctx: Any) -> list[Any]:
    """`coin report` on a replay of 1M bars (200k in --quick): stored figures and the recompute case,
    with json.loads per line as the reference for reading metrics.jsonl."""
    import os

    from coin_cli.report.figures import read_series

    rows = ctx.size(1_000_000, 100_000)
    work = ctx.tmp
    coin(["data", "bootstrap", "--symbol", "BTCUSDT", "--interval", "1m", "--rows", str(rows)], work)
    trade_s, run_id = coin(["trade", "--mode", "replay", "--interval", "1m"], work)
    folder = work / "r" / run_id
    summary = json.loads((folder / "summary.json").read_text())
    bare = work / "r" / "bare-run"
    shutil.copytree(folder, bare)
    (bare / "equity.svg").unlink()
    summary.pop("performance", None)
    (bare / "summary.json").write_text(json.dumps(summary))
    metrics = folder / "metrics.jsonl"

    def timed(fn: Any) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    load0 = os.getloadavg()[0]
    rounds = ctx.rounds({"stored": lambda: coin(["report", run_id], work)[0],
                         "bare": lambda: coin(["report", "bare-run"], work)[0]}, repeats=ctx.repeats(3, 3))
    reads = ctx.rounds({"arrow": lambda: timed(lambda: read_series(metrics)),
                        "json": lambda: timed(lambda: json_loads_reference(metrics))}, repeats=ctx.repeats(3, 1))
    cmd = "python -m benchmarks --only report  (alone: .venv/bin/python benchmarks/bench_report.py)"
    figs = [ctx.figure(f"`coin report RUN_ID` on a {rows:,}-bar replay (figures stored)", rounds, "stored",
                       goal=("<", 10.0), command=cmd),
            ctx.figure(f"`coin report` on a {rows:,}-bar run without stored figures (recomputed, redrawn)", rounds,
                       "bare", goal=("<", 10.0), command=cmd),
            ctx.figure(f"read metrics.jsonl ({rows:,} lines) with pyarrow's JSON reader", reads, "arrow",
                       peer="json.loads per line", peer_key="json", command=cmd),
            ctx.figure(f"the whole `coin trade --mode replay` of {rows:,} bars, figures and chart included", None,
                       value=trade_s, command=cmd)]
    figs[-1].load = (load0, os.getloadavg()[0])
    return figs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from coin_cli.report.figures import read_series, trade_figures
    from coin_cli.report.service import draw_trade_chart

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        coin(["data", "bootstrap", "--symbol", "BTCUSDT", "--interval", "1m", "--rows", str(args.rows)], work)
        trade_s, run_id = coin(["trade", "--mode", "replay", "--interval", "1m"], work)
        folder = work / "r" / run_id
        summary = json.loads((folder / "summary.json").read_text())
        print(f"replay of {summary['bars']:,} bars: {trade_s:.1f} s in all (loop {summary['elapsed_s']:.1f} s)")

        stored = [coin(["report", run_id], work)[0] for _ in range(args.repeats)]
        bare = work / "r" / "bare-run"
        shutil.copytree(folder, bare)
        (bare / "equity.svg").unlink()
        summary_bare = dict(summary)
        summary_bare.pop("performance")
        (bare / "summary.json").write_text(json.dumps(summary_bare))
        recompute = [coin(["report", "bare-run"], work)[0] for _ in range(args.repeats)]
        print(f"coin report, figures stored:      median {statistics.median(stored):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in stored)})")
        print(f"coin report, recomputed + drawn:  median {statistics.median(recompute):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in recompute)})")

        metrics = folder / "metrics.jsonl"
        arrow, ref, figs, draw = [], [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            series = read_series(metrics)
            t1 = time.perf_counter()
            trade_figures(series, summary, 60_000)
            t2 = time.perf_counter()
            draw_trade_chart(series, summary, work / "equity.svg")
            t3 = time.perf_counter()
            json_loads_reference(metrics)
            t4 = time.perf_counter()
            arrow.append(t1 - t0)
            figs.append(t2 - t1)
            draw.append(t3 - t2)
            ref.append(t4 - t3)
        m = statistics.median
        print(f"read metrics.jsonl: pyarrow {m(arrow):.2f} s, json.loads per line {m(ref):.2f} s "
              f"(ratio {m(arrow) / m(ref):.2f})")
        print(f"figures {m(figs):.2f} s; equity.svg (decimated to min/max per pixel column) {m(draw):.2f} s, "
              f"{(work / 'equity.svg').stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
