"""The service behind `coin trade`: take the per-symbol lock, build the runtime, run it, summarise.

Returns plain dicts for render; never imports typer or rich. Status updates go through a
callback `(snapshot) -> None` that the command builds (a panel on a terminal, lines otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.errors import LockHeldError, UsageError
from coin_cli.runs import file_lock
from coin_cli.runtime.build import Runtime, TradeRequest, build_runtime, check_mode

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runs import Run

log = logging.getLogger("coin.runtime")

Status = Callable[[dict[str, Any]], None]


def lock_name(settings: Settings) -> str:
    return f"trade-{settings.data.symbol}-{settings.data.interval}"


def run_trade(settings: Settings, run: Run, request: TradeRequest | None = None,
              status: Status | None = None) -> dict[str, Any]:
    """Run the trading loop to the end of the data (replay), a stop signal or --max-bars."""
    from coin_cli.runtime.loop import run_runtime

    check_mode(settings.trade.mode)
    check_output_paths(settings)
    with file_lock(settings.paths.runs_dir, lock_name(settings), "coin trade"), _store_lock(settings):
        rt = build_runtime(settings, run, request)
        try:
            started = time.perf_counter()
            run_runtime(rt, status)
            elapsed = time.perf_counter() - started
            summary = summarise(rt, elapsed)
            rt.parts.metrics.maybe_prometheus(prometheus_values(rt), force=True)
            rt.parts.metrics.flush()
            from coin_cli.report.service import finish_trade_run  # figures + equity.svg (matplotlib)

            summary["performance"] = finish_trade_run(run.dir, summary, rt.parts.alerts.raised)
            run.write_json("summary.json", summary)
        finally:
            rt.close()
    _record_outcome(run, summary)
    return summary


def _store_lock(settings: Settings) -> Any:
    """Paper and live append the stream's candles to the store for the whole run: the dataset's
    writer lock (the one `coin data download/import` take), so neither overwrites the other's rows."""
    import contextlib

    if settings.trade.mode == "replay":
        return contextlib.nullcontext()
    from coin_cli.data.service import dataset_lock

    return dataset_lock(settings, f"coin trade --mode {settings.trade.mode}")


def _record_outcome(run: Run, summary: dict[str, Any]) -> None:
    """The one rule of every command: SIGINT 130, SIGTERM 143 (both after committing the bar in
    progress: the run is `interrupted`, the ledger resumes); else a ledger that ends HALTED: 5."""
    from coin_cli.errors import ExitCode

    if summary.get("stopped_by") == "SIGINT":
        run.set_outcome("interrupted", ExitCode.INTERRUPTED)
    elif summary.get("stopped_by") == "SIGTERM":
        run.set_outcome("interrupted", ExitCode.TERMINATED)
    elif summary.get("risk_state") == "HALTED":
        run.set_outcome("halted", ExitCode.BLOCKED)


def check_output_paths(settings: Settings) -> None:
    """Every file the run writes, checked before the first bar (exit 2 naming the flag), so a bad
    path changes nothing: not a folder, and under a folder (or a folder that can be made)."""
    import os

    for flag, value in (("--prom-file", settings.trade.prom_file), ("--state-file", settings.trade.state_file)):
        if value is None:
            continue
        path = Path(value)
        if path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder, expected a file path")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: cannot write in {parent}")


def check_trade(settings: Settings, request: TradeRequest | None = None) -> dict[str, Any]:
    """Build the runtime without starting it: the "runtime ready" facts."""
    check_output_paths(settings)
    with _store_lock(settings):
        rt = build_runtime(settings, None, request)
    try:
        lock = _lock_status(settings)
        pf, risk = rt.parts.portfolio, rt.parts.risk
        spec_hash = rt.parts.features.spec.implementation_hash()
        ready: dict[str, Any] = {
            "status": "runtime ready",
            "symbol": rt.symbol,
            "interval": rt.interval,
            "mode": rt.mode,
            "policy": rt.policy_name,
            "policy_kind": type(rt.parts.policy).__name__,
            "broker": f"{rt.parts.broker.name} (ExecutionModel: fee {settings.env.fee_bps:g} bps, "
                      f"slippage {settings.env.slippage_bps:g} bps)",
            "source": rt.parts.source.describe(),
            "data_rows": rt.data_info.get("rows"),
            "data_source": rt.data_info.get("source"),
            "features": (f"{len(rt.parts.features.names)} (warm-up {rt.parts.features.warmup} bars, "
                         f"hash {spec_hash[:12]})"),
            "notifier": type(rt.parts.alerts.notifier).__name__,
            "state_file": str(rt.state_path),
            "state": "new ledger" if rt.resumed_from is None else f"resumes after bar {_iso(rt.resumed_from)}",
            "equity": pf.equity if rt.resumed_from is not None else pf.initial_cash,
            "risk_state": risk.state,
            "lock": lock,
        }
        for key, value in risk.limits.describe().items():
            ready[f"risk.{key}"] = value
        if rt.live is not None:  # connect, reconcile (read only), the account's facts; nothing is placed
            from coin_cli.runtime.live_build import live_check

            ready["broker"] = "binance (MARKET orders, live)"
            ready.update(live_check(rt))
        return ready
    finally:
        rt.close()


def summarise(rt: Runtime, elapsed: float) -> dict[str, Any]:
    pf, risk, metrics = rt.parts.portfolio, rt.parts.risk, rt.parts.metrics
    equity = pf.equity if rt.last_bar is not None else pf.cash
    lat = metrics.latency_summary()
    stopped = {2: "SIGINT", 15: "SIGTERM"}.get(rt.stop_requested or 0)
    return {
        "symbol": rt.symbol,
        "interval": rt.interval,
        "mode": rt.mode,
        "policy": rt.policy_name,
        "broker": rt.parts.broker.name,
        "state_file": str(rt.state_path),
        "resumed_from": _iso(rt.resumed_from),
        "first_bar": _iso(rt.first_bar),
        "last_bar": _iso(rt.last_bar),
        "bars": rt.bars_run,
        "bars_total": rt.bars_total,
        "initial_cash": pf.initial_cash,
        "final_equity": equity,
        "total_return": equity / pf.initial_cash - 1.0 if pf.initial_cash else None,
        "max_drawdown": risk.max_drawdown_seen,
        "trades": pf.trades,
        "fees": pf.fees,
        "turnover": pf.turnover,
        "cash": pf.cash,
        "position": pf.qty,
        "risk_state": risk.state,
        "risk_reason": risk.reason,
        "pending_target": rt.pending_target,
        "orders_rejected": rt.rejected,
        "alerts": rt.parts.alerts.total,
        **rt.parts.gap_filler.stats(),
        "elapsed_s": round(elapsed, 4),
        "candles_per_s": round(rt.bars_run / elapsed) if elapsed > 0 else None,
        "latency_p50_us": lat["bar"]["p50_us"],
        "latency_p99_us": lat["bar"]["p99_us"],
        "submit_p99_us": lat["event_to_submit"]["p99_us"],
        "stopped_by": stopped,
        "kept": (f"ledger committed after bar {_iso(rt.last_bar)}: run the same command to resume"
                 if stopped else None),
        "data_generated": bool(rt.data_info.get("generated")),
        "warnings": list(getattr(rt.parts.policy, "warnings", None) or []),
        **(rt.live.stats() if rt.live is not None else {}),
    }


def prometheus_values(rt: Runtime) -> dict[str, Any]:
    snap = rt.snapshot()
    snap["bars"] = rt.bars_run
    return snap


def _lock_status(settings: Settings) -> str:
    try:
        with file_lock(settings.paths.runs_dir, lock_name(settings), "coin trade") as path:
            return f"free ({path})"
    except LockHeldError as exc:
        return f"held: {exc}"


def _iso(ms: int | None) -> str | None:
    from coin_cli.data.schema import ms_to_iso

    return ms_to_iso(ms)

