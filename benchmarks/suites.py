"""Adapters for benchmark modules that do not define `run_benchmark` themselves (bench_live.py is
the lead's; this calls its functions). A module that later defines `run_benchmark` takes over:
discovery prefers it to the adapter of the same NAME."""

from __future__ import annotations

import signal
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.runner import Context, Figure, Suite, load_average

BOUND_S = 180.0   # one live run against the fake; past this it is reported as hung, not waited for


class Hung(Exception):
    """A live run still going after its bound."""


def bounded(fn: Callable[[], Any], seconds: float = BOUND_S) -> Any:
    """fn() with a SIGALRM watchdog (in the main thread: the runtime installs signal handlers,
    so it cannot run in another thread); None when it has not returned after `seconds`, so one
    hung run is reported instead of stalling the whole benchmark."""
    def expire(signum: int, frame: Any) -> None:
        raise Hung(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(int(seconds))
    try:
        return fn()
    except Hung:
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_live(ctx: Context) -> list[Figure]:
    """Live market data (issue 12): paper event -> decision per closed 1s bar and recovery after a
    socket drop, against the loopback fake (see bench_live.py's docstring for what is stamped).
    A p99 over 1 ms on a quiet machine is the CPU waking from idle between bars: the same run times
    a fixed ~6 µs piece of Python hot and right after a 1 s sleep (in the note)."""
    from benchmarks import bench_live

    cmd = ".venv/bin/python benchmarks/bench_live.py  (or python -m benchmarks --only live)"
    bars, runs_n, recoveries = ctx.size(30, 5), ctx.repeats(3, 1), ctx.repeats(3, 1)
    load0 = load_average()
    runs = [r for r in (bounded(lambda: bench_live.latency_once(bars)) for _ in range(runs_n)) if r]
    ref = bench_live.idle_reference(ctx.size(15, 5), 1.0)
    load1 = load_average()
    pct = bench_live._pct
    figs = []
    if runs:
        p50 = statistics.median(pct(r["decision"], .5) for r in runs)
        p99 = statistics.median(pct(r["decision"], .99) for r in runs)
        figs += [ctx.figure(f"event -> decision p50 (paper, {bars} closed 1s bars x {len(runs)} runs)", None,
                            value=p50, unit="us", command=cmd),
                 ctx.figure("event -> decision p99", None, value=p99, unit="us", goal=("<=", 1000.0), command=cmd,
                            note=f"reference: a fixed ~6 µs piece of Python, hot p50 {ref['hot_p50']:.0f} µs, "
                                 f"after 1 s idle p50 {ref['idle_p50']:.0f} / p99 {ref['idle_p99']:.0f} µs")]
        for fig in figs:
            fig.load, fig.repeats = (load0, load1), len(runs)
    hung = runs_n - len(runs)
    load0 = load_average()
    recs = [r for r in (bounded(lambda: bench_live.recovery_once(100)) for _ in range(recoveries)) if r]
    hung_rec = recoveries - len(recs)
    if recs:
        seconds = statistics.median(r["seconds"] for r in recs)
        fig = ctx.figure(f"recovery: reconnect -> last of {recs[0]['missed']} missed 1m bars processed", None,
                         value=seconds, goal=("<", 2.0), command=cmd,
                         note=f"{hung_rec} of {recoveries} runs hung past {BOUND_S:.0f} s" if hung_rec else "")
        fig.load, fig.repeats = (load0, load_average()), len(recs)
        figs.append(fig)
    if hung or not recs:
        figs.append(ctx.figure("live runs that did not finish", None, value=float(hung + hung_rec), unit="runs",
                               command=cmd, note=f"latency {hung} of {runs_n}, recovery {hung_rec} of {recoveries} "
                                                 f"(bound {BOUND_S:.0f} s each)"))
    return figs


ADAPTERS: list[Any] = [Suite("live", "7. Live market data (paper, loopback fake)", 70, run_live)]
