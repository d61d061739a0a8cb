"""Runtime benchmark (issue 6): replay throughput with VolTarget and SQLite state, per-bar latency,
peak memory of a 1,000,000-candle replay, and memory flatness over a long run.

    .venv/bin/python benchmarks/bench_runtime.py [--bars 200000] [--repeats 3] [--big 1000000]

Throughput is measured in-process (build_runtime + the asyncio loop, metrics.jsonl and the
SQLite ledger on), from the first event to the last commit; VolTarget names the one feature it
reads, so the runtime computes only that one per bar (the running sums behind every feature are
still kept). A second variant computes every feature of the spec per bar, as the runtime does for
a policy that reads them all. References measured in the same run, interleaved with it:
(a) the tightest loop over the same components the runtime must call per bar
(OnlineFeatureEngine.update, PolicyInput, VolTarget.act, ExecutionModel.execute) with no state,
metrics, risk or queue; (b) TradingEnv stepped with VolTarget over precomputed features (rollout).
Peak memory: a real `coin trade --mode replay` subprocess over --big candles (ru_maxrss of the
child). Flatness: RSS sampled through the status callback during an in-process run of --big bars.
"""

from __future__ import annotations

import argparse
import gc
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _settings(root: Path, **more: Any) -> Any:
    from coin_cli.config import load_settings

    overrides = {"paths.runs_dir": (root / "runs", "bench"), "paths.data_dir": (root / "data", "bench"),
                 "trade.mode": ("replay", "bench"), "data.interval": ("1m", "bench"),
                 "risk.max_drawdown": (1.0, "bench"), "risk.reduce_drawdown": (1.0, "bench"),
                 "risk.max_daily_turnover": (1e6, "bench")}
    overrides.update({k: (v, "bench") for k, v in more.items()})
    return load_settings(None, env={}, overrides=overrides)


def _make_store(root: Path, rows: int) -> Any:
    from coin_cli.data.bootstrap import generate_candles
    from coin_cli.data.store import CandleStore

    frame = generate_candles(rows, "1m", 7)
    CandleStore(root / "data", "binance").replace("BTCUSDT", "1m", frame, "bootstrap")
    return frame


def runtime_once(root: Path, tag: str, status_every: float | None = None, all_features: bool = False
                 ) -> dict[str, Any]:
    """One in-process replay over the whole store with a fresh state file. `all_features`: the
    feature engine computes the whole spec per bar, as for a policy that reads every feature
    (VolTarget names the one it reads, so the runtime computes only that one)."""
    from coin_cli.runs import Run
    from coin_cli.runtime.build import TradeRequest, build_runtime
    from coin_cli.runtime.loop import run_runtime

    settings = _settings(root, **{"trade.state_file": root / f"state-{tag}.sqlite"})
    run = Run(settings.paths.runs_dir, "trade", settings, argv=["bench"])
    rt = build_runtime(settings, run, TradeRequest())
    if all_features:
        from coin_cli.features import OnlineFeatureEngine

        rt.parts.features = OnlineFeatureEngine(rt.parts.features.spec)
    samples: list[tuple[int, int]] = []

    def status(snap: dict[str, Any]) -> None:
        samples.append((snap["bars"], _rss_bytes()))

    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    run_runtime(rt, status if status_every is not None else None)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    lat = rt.parts.metrics.latency_summary()
    out = {"bars": rt.bars_run, "seconds": elapsed, "per_s": rt.bars_run / elapsed, "per_cpu_s": rt.bars_run / cpu,
           "trades": rt.parts.portfolio.trades,
           "commits": rt.parts.state.commits, "lat": lat, "samples": samples, "equity": rt.parts.portfolio.equity}
    rt.close()
    return out


def reference_tight(frame: Any) -> dict[str, Any]:
    """The same per-bar components, nothing else: the floor for any loop that calls them."""
    from coin_cli.agents.baselines import VolTarget
    from coin_cli.agents.policy import PolicyInput
    from coin_cli.config import Settings
    from coin_cli.env.execution import ExecutionModel, ExecutionParams
    from coin_cli.features import FeatureSpec, OnlineFeatureEngine
    from coin_cli.runtime.sources import CandleArrays

    settings = Settings()
    settings.data.interval = "1m"
    arrays = CandleArrays.from_frame(frame)
    candles = arrays.candles(0, len(arrays))
    engine = OnlineFeatureEngine(FeatureSpec.from_config(settings.features))
    policy = VolTarget.from_settings(settings)
    model = ExecutionModel(ExecutionParams.from_settings(settings))
    cash, qty, target = 10_000.0, 0.0, None
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for c in candles:
        if target is not None:
            _fill, cash, qty = model.execute(target, cash, qty, c.open)
        row = engine.update(c)
        equity = cash + qty * c.close
        weight = qty * c.close / equity
        target = policy.act(PolicyInput(features=row, position_weight=weight, equity=equity, open_time=c.open_time))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"bars": len(candles), "seconds": elapsed, "per_s": len(candles) / elapsed,
            "per_cpu_s": len(candles) / cpu}


def reference_env(frame: Any) -> dict[str, Any]:
    from coin_cli.agents.baselines import VolTarget
    from coin_cli.config import Settings
    from coin_cli.env.rollout import rollout
    from coin_cli.env.trading_env import make_env

    settings = Settings()
    settings.data.interval = "1m"
    settings.env.ruin_fraction = 0.0
    env = make_env(settings, frame, mode="eval")
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    result = rollout(env, VolTarget.from_settings(settings))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    steps = result.summary["steps"]
    return {"bars": steps, "seconds": elapsed, "per_s": steps / elapsed, "per_cpu_s": steps / cpu}


def cli_big(root: Path) -> dict[str, Any]:
    """A real `coin trade --mode replay` over the big store: wall time and the child's peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COIN_", "BINANCE_", "TELEGRAM_"))}
    env.update({"COIN_RISK__MAX_DRAWDOWN": "1", "COIN_RISK__REDUCE_DRAWDOWN": "1",
                "COIN_RISK__MAX_DAILY_TURNOVER": "1000000"})
    cmd = [sys.executable, "-m", "coin_cli", "--runs-dir", str(root / "runs"), "--data-dir", str(root / "data"),
           "trade", "--mode", "replay", "--symbol", "BTCUSDT", "--interval", "1m", "--json",
           "--state-file", str(root / "state-cli.sqlite")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"coin trade failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    return {"wall_s": wall, "peak_rss_mib": max(peak_kib, before) / 1024, "summary": summary}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        root = Path(tmp) / "small"
        frame = _make_store(root, args.bars)
        rt_runs, all_runs, tight_runs, env_runs = [], [], [], []
        for i in range(args.repeats):  # interleaved, so machine noise hits all of them alike
            rt_runs.append(runtime_once(root, f"r{i}"))
            all_runs.append(runtime_once(root, f"a{i}", all_features=True))
            tight_runs.append(reference_tight(frame))
            env_runs.append(reference_env(frame))
        groups = (("runtime", rt_runs), ("all", all_runs), ("tight", tight_runs), ("env", env_runs))
        med = {name: statistics.median(r["per_s"] for r in runs) for name, runs in groups}
        cpu = {name: statistics.median(r["per_cpu_s"] for r in runs) for name, runs in groups}
        best = rt_runs[max(range(len(rt_runs)), key=lambda i: rt_runs[i]["per_s"])]
        print(f"replay throughput over {args.bars:,} 1m candles (VolTarget, SQLite state, metrics.jsonl), "
              f"{args.repeats} repeats")
        print("  (wall = candles per elapsed second; cpu = per CPU second of this process, less sensitive "
              "to other load on the machine)")
        labels = {"runtime": "runtime", "all": "runtime, every feature computed", "tight": "tight loop (ref)",
                  "env": "TradingEnv (ref)"}
        for name, runs in groups:
            note = ("runs: " + ", ".join(f"{r['per_s']:,.0f}" for r in runs)) if name in ("runtime", "all") else ""
            if name == "tight":
                note = f"runtime/ref = {cpu['runtime'] / cpu['tight']:.2f} (cpu)"
            line = f"  {labels[name]:<32} median {med[name]:>10,.0f} /s wall, {cpu[name]:>10,.0f} /s cpu   {note}"
            print(line.rstrip())
        print(f"  trades {best['trades']:,}, commits {best['commits']:,}")
        lat = best["lat"]
        print(f"  per-bar latency (event -> bar done): p50 {lat['bar']['p50_us']} us, p99 {lat['bar']['p99_us']} us, "
              f"p99.9 {lat['bar']['p999_us']} us, max {lat['bar']['max_us']} us")
        print(f"  event -> broker submit ({lat['event_to_submit']['n']:,} orders): "
              f"p50 {lat['event_to_submit']['p50_us']} us, p99 {lat['event_to_submit']['p99_us']} us")
        del frame

        big = Path(tmp) / "big"
        _make_store(big, args.big)
        cli = cli_big(big)
        s = cli["summary"]
        print(f"coin trade --mode replay over {args.big:,} candles (subprocess): wall {cli['wall_s']:.1f}s, "
              f"loop {s['candles_per_s']:,} candles/s, peak RSS {cli['peak_rss_mib']:,.0f} MiB")
        flat = runtime_once(big, "flat", status_every=0.5)
        samples = flat["samples"]
        if samples:
            picks = [samples[int(q * (len(samples) - 1))] for q in (0.1, 0.5, 0.9)] + [samples[-1]]
            print("  RSS during an in-process run of the same bars: "
                  + ", ".join(f"{bars:,} bars {rss / 2**20:,.0f} MiB" for bars, rss in picks))


if __name__ == "__main__":
    main()
