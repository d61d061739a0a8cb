"""Replay throughput against the backtesting engines a user would pick (issue 16, row 3), and the
runtime goals of issue 6.

    .venv/bin/python -m benchmarks --only replay

Same synthetic 1m bars (coin's bootstrap generator) for everyone, VolTarget (coin's defaults:
target_vol 0.5, vol_24, rebalance band 0.05), fee 10 bps, slippage 5 bps, 10,000 initial cash,
risk limits off. Contenders in the same interleaved rounds:
- coin, loop: build_runtime + the asyncio loop in-process (SQLite ledger and metrics.jsonl on),
  first event to last commit (bench_runtime.runtime_once);
- coin, whole command: `coin trade --mode replay` as a subprocess, start-up, data load, the loop,
  the end-of-run figures and chart included, candles / wall second;
- backtrader and vectorbt (benchmarks/peers/backtest.py); nautilus_trader reported as not
  installable (pandas<3).
Equity check: vectorbt's `from_orders` on coin's target weights at the bars coin traded, and on
coin's own fills (quantity and price), against coin's final equity.

Why the loop is fast (CPU per bar ~20 us -> ~8 us while building issue 6): straight-line feature
updates generated per spec, only the features the policy reads computed per bar, replay batches
of numpy columns instead of a Candle object per bar, the order sized before an intent is built,
metrics lines as one %-format with cached text, SQLite commits grouped every 1,000 bars; the
largest single cost left is the metrics line and its write.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_runtime import _make_store, reference_tight, runtime_once

NAME = "replay"
TITLE = "3. Replay: coin trade --mode replay vs backtesting engines"
ORDER = 30
REPO = Path(__file__).resolve().parents[1]
FEE, SLIPPAGE, CASH, LOT = 10 / 1e4, 5 / 1e4, 10_000.0, 0.00001


def coin_command(root: Path, tag: str) -> dict[str, Any]:
    """`coin trade --mode replay` over the store at `root`, a fresh ledger per call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COIN_", "BINANCE_", "TELEGRAM_"))}
    env.update({"COIN_RISK__MAX_DRAWDOWN": "1", "COIN_RISK__REDUCE_DRAWDOWN": "1",
                "COIN_RISK__MAX_DAILY_TURNOVER": "1000000"})
    cmd = [sys.executable, "-m", "coin_cli", "--runs-dir", str(root / "runs"), "--data-dir", str(root / "data"),
           "trade", "--mode", "replay", "--symbol", "BTCUSDT", "--interval", "1m", "--json",
           "--state-file", str(root / f"state-cli-{tag}.sqlite")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"coin trade failed ({proc.returncode}): {proc.stderr[-1500:]}")
    summary = json.loads(proc.stdout)
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return {"wall_s": wall, "summary": summary, "peak_rss_mib": peak}


def coin_orders(state: Path, frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coin's target weight per bar (NaN where it placed no order) and its fills (qty, price)."""
    index = {int(t): i for i, t in enumerate(frame["open_time"].to_numpy())}
    n = len(frame)
    targets, qty, price = np.full(n, np.nan), np.zeros(n), np.full(n, np.nan)
    with sqlite3.connect(state) as con:
        for exec_bar, target in con.execute("SELECT exec_bar, target FROM orders WHERE status = 'FILLED'"):
            targets[index[exec_bar]] = target
        for bar, q, p in con.execute("SELECT bar, qty, price FROM fills"):
            qty[index[bar]] += q
            price[index[bar]] = p
    price = np.where(np.isnan(price), frame["open"].to_numpy(), price)
    return targets, qty, price


def run_benchmark(ctx: Any) -> list[Any]:
    from benchmarks.peers import backtest

    bars = ctx.size(100_000, 10_000)
    root = ctx.tmp / "store"
    frame = _make_store(root, bars)
    counter = iter(range(10_000))
    per_year = 365 * 24 * 60
    bt_kwargs = {"fee": FEE, "slippage": SLIPPAGE, "cash": CASH, "target_vol": 0.5, "window": 24,
                 "bars_per_year": per_year, "band": 0.05}

    first = runtime_once(root, "targets")
    targets, fill_qty, fill_price = coin_orders(root / "state-targets.sqlite", frame)
    probe_bt = backtest.backtrader_run(frame.iloc[:2000], **bt_kwargs)
    probe_vbt = backtest.vectorbt_run(frame, targets, fee=FEE, slippage=SLIPPAGE, cash=CASH, lot_step=LOT)
    last: dict[str, Any] = {}

    def coin_loop() -> float:
        out = runtime_once(root, f"loop{next(counter)}")
        last["loop"] = out
        return out["per_s"]

    def coin_cmd() -> float:
        out = coin_command(root, str(next(counter)))
        last["cmd"] = out
        return bars / out["wall_s"]

    def run_bt() -> float:
        out = backtest.backtrader_run(frame, **bt_kwargs)
        last["bt"] = out
        return bars / out["seconds"]

    def run_vbt() -> float:
        out = backtest.vectorbt_run(frame, targets, fee=FEE, slippage=SLIPPAGE, cash=CASH, lot_step=LOT)
        last["vbt"] = out
        return bars / out["seconds"]

    contenders = {"loop": coin_loop, "cmd": coin_cmd}
    if not isinstance(probe_bt, str):
        contenders["backtrader"] = run_bt
    if not isinstance(probe_vbt, str):
        contenders["vectorbt"] = run_vbt
    # warm-up for the page cache and numba's compilation; backtrader has neither, and is the
    # slowest contender by far, so its warm-up is the 2,000-bar probe above
    coin_loop(), coin_cmd()
    if "vectorbt" in contenders:
        run_vbt()
    rounds = ctx.rounds(contenders, repeats=ctx.repeats(3, 3), warmup=False)
    cmd = "python -m benchmarks --only replay"
    loop = f"coin replay loop, VolTarget, {bars:,} 1m bars (in-process, ledger + metrics on)"
    whole = f"`coin trade --mode replay`, {bars:,} bars, whole command (start-up, load, loop, report)"
    figs = [ctx.figure(loop, rounds, "loop", unit="/s", higher_is_better=True, goal=(">=", 100_000.0), command=cmd,
                       peer="backtrader" if "backtrader" in contenders else None,
                       peer_key="backtrader" if "backtrader" in contenders else None,
                       note=f"coin trades {first['trades']:,} times")]
    if "backtrader" not in contenders:
        figs.append(ctx.unavailable(loop, "backtrader", str(probe_bt), cmd))
    figs.append(ctx.unavailable(loop, "nautilus_trader BacktestEngine", backtest.nautilus_available()
                                or "installed but not wired", cmd))
    if "backtrader" in contenders:
        figs.append(ctx.figure(whole, rounds, "cmd", unit="/s", higher_is_better=True, peer="backtrader (cerebro.run)",
                               peer_key="backtrader", command=cmd,
                               note=f"backtrader final value {last['bt']['equity']:,.2f} vs coin "
                                    f"{first['equity']:,.2f} (its own sizing and cash checks)"))
    if "vectorbt" in contenders:
        figs.append(ctx.figure(loop + " vs the vectorised bound", rounds, "loop", unit="/s", higher_is_better=True,
                               peer="vectorbt Portfolio.from_orders", peer_key="vectorbt", command=cmd))
        figs += _equity_rows(ctx, frame, first["equity"], last["vbt"]["equity"], fill_qty, fill_price, cmd)
    else:
        figs.append(ctx.unavailable(loop, "vectorbt", str(probe_vbt), cmd))

    tight = reference_tight(frame)
    lat = last["loop"]["lat"]
    figs.append(ctx.figure("replay loop / bare component loop (same components, no ledger, metrics, queue)", None,
                           value=last["loop"]["per_s"] / tight["per_s"], unit="x", command=cmd,
                           note=f"bare loop {tight['per_s']:,.0f} /s"))
    figs.append(ctx.figure(f"event -> broker submit p99 ({lat['event_to_submit']['n']:,} orders)", None,
                           value=float(lat["event_to_submit"]["p99_us"]), unit="us", goal=("<=", 1000.0), command=cmd))
    figs.append(ctx.figure("per-bar latency, event -> bar processed, p99", None, value=float(lat["bar"]["p99_us"]),
                           unit="us", command=cmd, note=f"p50 {lat['bar']['p50_us']} µs"))
    figs += _big(ctx, cmd)
    return figs


def _equity_rows(ctx: Any, frame: Any, coin_equity: float, vbt_equity: float, qty: np.ndarray, price: np.ndarray,
                 cmd: str) -> list[Any]:
    from benchmarks.peers import backtest

    rel = abs(vbt_equity - coin_equity) / coin_equity
    exact = backtest.vectorbt_fills(frame, qty, price, fee=FEE, cash=CASH)
    exact_rel = abs(exact - coin_equity) / coin_equity if not isinstance(exact, str) else float("nan")
    return [
        ctx.figure("final equity: coin vs vectorbt on coin's target weights, relative difference", None, value=rel,
                   unit="rel", command=cmd,
                   note=f"coin {coin_equity:,.4f}, vectorbt {vbt_equity:,.4f}: vectorbt sizes from the same "
                        "weight but does not round the fill price to the 0.01 tick nor fit the fee into the "
                        "cash as coin's ExecutionModel does, so quantities differ in the last lot steps"),
        ctx.figure("final equity: coin vs vectorbt on coin's own fills (qty, price), relative difference", None,
                   value=exact_rel, unit="rel", command=cmd,
                   note=f"vectorbt {exact:,.6f}: the same accounting; what is left is float summation order"),
    ]


def _big(ctx: Any, cmd: str) -> list[Any]:
    """Issue 6's memory goals: a 1,000,000-candle `coin trade --mode replay` and RSS over the run."""
    big = ctx.size(1_000_000, 100_000)
    root = ctx.tmp / "big"
    _make_store(root, big)
    load0 = os.getloadavg()[0]
    out = coin_command(root, "big")
    flat = runtime_once(root, "flat", status_every=0.5)
    samples = flat["samples"]
    growth = (samples[-1][1] - samples[len(samples) // 10][1]) / 2**20 if len(samples) >= 2 else float("nan")
    figs = [ctx.figure(f"`coin trade --mode replay` over {big:,} candles: peak RSS", None, value=out["peak_rss_mib"],
                       unit="MiB", goal=("<", 1024.0), command=cmd,
                       note=f"wall {out['wall_s']:.1f} s, loop {out['summary'].get('candles_per_s', 0):,} /s"),
            ctx.figure(f"RSS growth from 10% to the end of an in-process {big:,}-bar run", None, value=growth,
                       unit="MiB", goal=("<", 50.0), command=cmd, note=f"{len(samples)} samples of RSS during the run")]
    for fig in figs:
        fig.load = (load0, os.getloadavg()[0])
    return figs
