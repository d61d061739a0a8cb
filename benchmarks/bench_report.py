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
