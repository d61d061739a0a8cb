"""Adapters for benchmark modules that do not define `run_benchmark` themselves (bench_live.py is
the lead's; this calls its functions). A module that later defines `run_benchmark` takes over:
discovery prefers it to the adapter of the same NAME."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.runner import Context, Figure, Suite


def run_live(ctx: Context) -> list[Figure]:
    """Live market data (issue 12): paper event -> decision per closed 1s bar and recovery after a
    socket drop, against the loopback fake (see bench_live.py's docstring for what is stamped).
    The p99 over 1 ms is the CPU waking from idle between bars: the same run times a fixed ~6 µs
    piece of Python hot and right after a 1 s sleep (the reference row)."""
    from benchmarks import bench_live

    cmd = ".venv/bin/python benchmarks/bench_live.py  (or python -m benchmarks --only live)"
    bars, runs_n, recoveries = ctx.size(30, 5), ctx.repeats(3, 1), ctx.repeats(3, 1)
    load0 = ctx_load()
    runs = [bench_live.latency_once(bars) for _ in range(runs_n)]
    ref = bench_live.idle_reference(ctx.size(15, 5), 1.0)
    load1 = ctx_load()
    pct = bench_live._pct
    p50 = statistics.median(pct(r["decision"], .5) for r in runs)
    p99 = statistics.median(pct(r["decision"], .99) for r in runs)
    figs = [
        Figure(ctx.section, f"event -> decision p50 (paper, {bars} closed 1s bars x {runs_n} runs)", p50, "us",
               command=cmd, load=(load0, load1), repeats=runs_n),
        Figure(ctx.section, "event -> decision p99", p99, "us", goal="<= 1000", met=p99 <= 1000, command=cmd,
               load=(load0, load1), repeats=runs_n,
               note=f"reference: fixed ~6 µs of Python hot p50 {ref['hot_p50']:.0f} µs, after 1 s idle "
                    f"p50 {ref['idle_p50']:.0f} / p99 {ref['idle_p99']:.0f} µs (CPU wake-up)"),
    ]
    load0 = ctx_load()
    recs = [bench_live.recovery_once(100) for _ in range(recoveries)]
    seconds = statistics.median(r["seconds"] for r in recs)
    figs.append(Figure(ctx.section, f"recovery: reconnect -> last of {recs[0]['missed']} missed 1m bars processed",
                       seconds, "s", goal="< 2", met=seconds < 2, command=cmd, load=(load0, ctx_load()),
                       repeats=recoveries))
    return figs


def ctx_load() -> float:
    from benchmarks.runner import load_average

    return load_average()


ADAPTERS: list[Any] = [Suite("live", "7. Live market data (paper, loopback fake)", 70, run_live)]
