"""Live orders (issue 13): decision -> order request on the wire, and executionReport -> ledger commit.

    .venv/bin/python benchmarks/bench_orders.py [--bars 60] [--repeats 2]      (or python -m benchmarks --only orders)

`coin trade --mode live` runs in-process (build_runtime + the runtime's own asyncio loop) against the
loopback fake Binance in its own process (real aiohttp server, real python-binance, real SQLite
ledger), VolTarget sized so it buys on every 1s bar while the fake fills at most 0.01 BTC per
MARKET order (the rest EXPIRES), so nearly every bar sends one order. Stamps, at the edges only:
- decision: wall clock when the bar pipeline hands the intent to the ledger (StateStore.record_intent,
  wrapped), i.e. after sizing, before the write-ahead commit; the commit's own time is stamped too;
- on the wire: the fake's own arrival stamp of the POST /api/v3/order (`wall_ns` in its request
  log, same machine, same clock). So the figure INCLUDES the loopback hop and the fake's HTTP parsing.
- executionReport -> commit: from the moment the user stream's event is handed to the runtime's
  queue (the session's forwarder, wrapped) to the end of its booking (one SQLite transaction).

The write-ahead intent is committed with synchronous=FULL (an fsync: the one write that must
survive power loss, state.py); its time is reported apart, and the decision -> wire figure is
given with and without it. The goal (<= 1 ms p99 excluding the network) is judged without it: an
fsync is the price of never sending an order twice, and this disk's fsync alone is several ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAME = "orders"
TITLE = "7b. Live orders (loopback fake exchange)"
ORDER = 72

CSV = REPO / "tests" / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 240
KEY, SECRET = "bench-key", "bench-secret"
COMMAND = ".venv/bin/python benchmarks/bench_orders.py  (or python -m benchmarks --only orders)"


def _settings(root: Path, fake: Any) -> Any:
    from coin_cli.config import load_settings

    values = {"paths.runs_dir": root / "runs", "paths.data_dir": root / "data", "trade.mode": "live",
              "trade.live_enabled": True, "data.symbol": "BTCUSDT", "data.interval": "1s",
              "binance.api_url": fake.api_url, "binance.stream_url": fake.stream_url,
              "binance.ws_api_url": fake.ws_api_url, "binance.max_retries": 3,
              "policy.rebalance_band": 0.0, "policy.target_vol": 30.0, "risk.max_drawdown": 1.0,
              "risk.reduce_drawdown": 1.0, "risk.max_daily_turnover": 1e6, "risk.stale_intervals": 1e5}
    return load_settings(None, env={}, overrides={k: (v, "bench") for k, v in values.items()})


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def once(bars: int) -> dict[str, list[float]]:
    """One live run of `bars` bars; per-order and per-report samples in µs."""
    from coin_cli.runs import Run
    from coin_cli.runtime.build import TradeRequest, build_runtime
    from coin_cli.runtime.loop import run_runtime
    from tests.fakes.binance import FakeBinanceProcess

    os.environ["BINANCE_API_KEY"], os.environ["BINANCE_API_SECRET"] = KEY, SECRET
    decided: dict[str, tuple[int, int, int]] = {}   # client id -> (wall ns, perf ns at the decision, commit ns)
    reports: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, FakeBinanceProcess(
            "--candles", f"BTCUSDT:1s:{HISTORY}:{CSV}", "--account", f"{KEY}:{SECRET}:USDT=20000") as fake:
        fake.control("liquidity", symbol="BTCUSDT", quantity="0.01")
        settings = _settings(Path(tmp), fake)
        rt = build_runtime(settings, Run(settings.paths.runs_dir, "trade", settings, argv=["bench"]),
                           TradeRequest(max_bars=bars))
        state, live = rt.parts.state, rt.live
        record_intent = state.record_intent

        def stamped_intent(seq: int, cid: str, *args: Any) -> None:
            t0, p0 = time.time_ns(), time.perf_counter_ns()
            record_intent(seq, cid, *args)
            decided[cid] = (t0, p0, time.perf_counter_ns() - p0)

        state.record_intent = stamped_intent
        forward, handle = live._forward, live.handle
        arrived: dict[int, int] = {}

        class StampedQueue:
            def __init__(self, queue: asyncio.Queue[Any]) -> None:
                self.queue = queue

            async def put(self, event: Any) -> None:
                arrived[id(event)] = time.perf_counter_ns()
                await self.queue.put(event)

        async def stamped_forward(own: Any, queue: Any) -> None:
            await forward(own, StampedQueue(queue))

        def stamped_handle(rt_: Any, event: Any) -> None:
            handle(rt_, event)
            start = arrived.pop(id(event), None)
            if start is not None and getattr(event, "event_type", "") == "executionReport" \
                    and event.payload.get("x") == "TRADE":
                reports.append((time.perf_counter_ns() - start) / 1000)

        live._forward, live.handle = stamped_forward, stamped_handle
        written: dict[str, int] = {}                 # client id -> wall ns when aiohttp wrote the body
        start = live.start

        async def traced_start(rt_: Any, queue: Any) -> None:
            import aiohttp

            async def chunk_sent(_session: Any, _ctx: Any, params: Any) -> None:
                text = bytes(params.chunk).decode(errors="replace")
                for part in text.split("&"):
                    if part.startswith("newClientOrderId="):
                        written.setdefault(part.partition("=")[2], time.time_ns())

            trace = aiohttp.TraceConfig()
            trace.on_request_chunk_sent.append(chunk_sent)
            trace.freeze()
            await start(rt_, queue)
            live.rest.client.session._trace_configs.append(trace)   # the socket edge, client side

        live.start = traced_start
        try:
            run_runtime(rt)
        finally:
            rt.close()
        posts = {r["params"].get("newClientOrderId"): r["wall_ns"] for r in fake.control("requests")
                 if r["path"] == "/api/v3/order" and r["method"] == "POST"}
        floor = asyncio.run(_library_floor(fake, len(decided) or 10))
        started = dict(rt.parts.broker.sent_ns)       # perf ns when each order's task began to send
    wire, wire_no_fsync, fsync, to_task, task_to_wire, to_write = [], [], [], [], [], []
    for cid, (t0, p0, commit_ns) in decided.items():
        if cid in written:
            to_write.append((written[cid] - t0 - commit_ns) / 1000)
        if cid in posts:
            total = (posts[cid] - t0) / 1000
            wire.append(total)
            fsync.append(commit_ns / 1000)
            wire_no_fsync.append(total - commit_ns / 1000)
            if cid in started:
                to_task.append((started[cid] - p0 - commit_ns) / 1000)
                task_to_wire.append(total - (started[cid] - p0) / 1000)
    return {"wire": wire, "wire_no_fsync": wire_no_fsync, "fsync": fsync, "report": reports,
            "to_task": to_task, "task_to_wire": task_to_wire, "to_write": to_write, "library": floor}


async def _library_floor(fake: Any, n: int) -> list[float]:
    """The reference: python-binance alone, from the call to its body on the socket (POST /order/test,
    the same signed form), on the same machine in the same run."""
    import aiohttp

    from coin_cli.integrations.binance.rest import client_class

    written: list[int] = []

    async def chunk_sent(_session: Any, _ctx: Any, _params: Any) -> None:
        written.append(time.time_ns())

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(chunk_sent)
    trace.freeze()
    client = await client_class(fake.api_url).create(KEY, SECRET)
    client.session._trace_configs.append(trace)
    out = []
    try:
        for i in range(n):
            written.clear()
            t0 = time.time_ns()
            await client.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                                           newClientOrderId=f"ref-{i}")
            if written:
                out.append((written[0] - t0) / 1000)
            await asyncio.sleep(0.05)
    finally:
        await client.close_connection()
    return out


def measure(bars: int, repeats: int) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {"wire": [], "wire_no_fsync": [], "fsync": [], "report": [], "to_task": [],
                                      "task_to_wire": [], "to_write": [], "library": []}
    for _ in range(repeats):
        for key, values in once(bars).items():
            merged[key].extend(values)
    return merged


def run_benchmark(ctx: Any) -> list[Any]:
    from benchmarks.runner import load_average

    before = load_average()
    m = measure(ctx.size(60, 20), ctx.repeats(2, 1))
    load = (before, load_average())
    rows = []
    for key, name, goal, peer in (
            ("to_task", "decision -> its order task starts sending p99 (coin's part, without the fsync)", 1000.0,
             None),
            ("to_write", "decision -> order written to the socket p99, without the intent fsync", 1000.0, "library"),
            ("wire", "decision -> order at the exchange p99, with the intent fsync", None, None),
            ("fsync", "write-ahead intent commit (synchronous=FULL) p99", None, None),
            ("report", "executionReport -> ledger commit p99", 5000.0, None)):
        fig = ctx.figure(f"{name} ({len(m[key])} samples, p50 {_pct(m[key], 0.5):,.0f} µs)", None,
                         value=_pct(m[key], 0.99), unit="µs", goal=("<=", goal) if goal else None, command=COMMAND,
                         peer="python-binance alone, call -> socket" if peer else None,
                         peer_value=_pct(m[peer], 0.99) if peer else None)
        fig.load = load
        rows.append(fig)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    m = measure(args.bars, args.repeats)
    for key in ("to_write", "library", "wire_no_fsync", "wire", "fsync", "to_task", "task_to_wire", "report"):
        print(f"{key:14s} n={len(m[key]):3d}  p50 {_pct(m[key], 0.5):9,.0f} µs  p99 {_pct(m[key], 0.99):9,.0f} µs  "
              f"max {max(m[key], default=float('nan')):9,.0f} µs")


if __name__ == "__main__":
    main()
