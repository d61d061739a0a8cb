"""`coin trade`: the event-driven trading runtime (replay; paper on Binance's kline stream; live with orders)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from coin_cli.commands._options import JSON_OPTION, app_context, complete_interval, complete_symbol


def trade(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="data.symbol, e.g. BTCUSDT",
                                      autocompletion=complete_symbol),
    interval: str | None = typer.Option(None, "--interval", help="data.interval, e.g. 1h",
                                        autocompletion=complete_interval),
    mode: str | None = typer.Option(None, "--mode", help="trade.mode: replay | paper | live (default: paper)"),
    policy: str | None = typer.Option(None, "--policy",
                                      help="trade.policy: voltarget | buyhold | flat | <train run_id>"),
    start: str | None = typer.Option(None, "--from", help="Replay from this open time (date, ISO time or ms)."),
    end: str | None = typer.Option(None, "--to", help="Replay up to this open time (exclusive)."),
    check: bool = typer.Option(False, "--check", help="Build the runtime, print the 'runtime ready' table, exit."),
    max_bars: int | None = typer.Option(None, "--max-bars", help="Stop after this many bars."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds (commits first)."),
    speed: float | None = typer.Option(None, "--speed", help="trade.speed: replay bars per second (0 = max)."),
    prom_file: Path | None = typer.Option(None, "--prom-file", help="trade.prom_file: Prometheus textfile."),
    allow_unpromoted: bool | None = typer.Option(None, "--allow-unpromoted", help="trade.allow_unpromoted"),
    state_file: Path | None = typer.Option(None, "--state-file", help="trade.state_file: the SQLite ledger."),
    reset_halt: bool = typer.Option(False, "--reset-halt", help="Clear a persisted HALTED risk state first."),
    confirm_live: bool = typer.Option(False, "--confirm-live",
                                      help="trade.live_enabled: the opt-in --mode live needs (real orders)."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Run the trading loop: replay, paper (default) or live."""
    app_ctx = app_context(ctx)
    settings = app_ctx.settings(
        data__symbol=(symbol, "--symbol"), data__interval=(interval, "--interval"),
        trade__mode=(mode, "--mode"), trade__policy=(policy, "--policy"), trade__speed=(speed, "--speed"),
        trade__prom_file=(prom_file, "--prom-file"), trade__allow_unpromoted=(allow_unpromoted, "--allow-unpromoted"),
        trade__state_file=(state_file, "--state-file"),
        trade__live_enabled=(True if confirm_live else None, "--confirm-live"),
    )
    from coin_cli import render
    from coin_cli.data.schema import parse_time_ms
    from coin_cli.runtime.build import TradeRequest

    request = TradeRequest(start_ms=parse_time_ms(start, "--from") if start else None,
                           end_ms=parse_time_ms(end, "--to") if end else None,
                           max_bars=max_bars, duration_s=duration, reset_halt=reset_halt)
    with app_ctx.open_run(settings, "trade", json_mode) as run:
        if check:
            from coin_cli.runtime.service import check_trade

            ready = check_trade(settings, request)
            run.write_json("runtime_check.json", ready)
            render.emit(ready, json_mode=json_mode, tables=[render.kv_table("runtime ready", ready)],
                        run_id=run.run_id)
            return
        from coin_cli.runtime.service import run_trade

        with _status_display(json_mode) as status:
            summary = run_trade(settings, run, request, status)
    render.emit(summary, json_mode=json_mode, tables=[render.kv_table("trade", {  # performance: see coin report
        k: v for k, v in summary.items() if k != "performance"})], run_id=run.run_id)
    if summary.get("kept"):
        render.info(f"{'interrupted' if summary['stopped_by'] == 'SIGINT' else 'terminated (SIGTERM)'}: "
                    f"{summary['kept']}")
    if run.exit_code:
        raise typer.Exit(run.exit_code)


@contextmanager
def _status_display(json_mode: bool) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A live status line on stderr when it is a terminal; otherwise a plain line a minute."""
    import time

    from coin_cli import render

    if sys.stderr.isatty() and not json_mode:
        with render.progress("trade") as bar:
            yield lambda snap: bar(snap["bars"], None, _status_text(snap))
        return
    next_line = [time.monotonic() + 60.0]

    def line(snap: dict[str, Any]) -> None:
        if time.monotonic() >= next_line[0]:
            next_line[0] = time.monotonic() + 60.0
            render.info(_status_text(snap))

    yield line


def _status_text(snap: dict[str, Any]) -> str:
    from coin_cli.data.schema import ms_to_iso

    return (f"{snap['symbol']} {snap['interval']} {snap['mode']} | bar {ms_to_iso(snap['last_bar'])} | "
            f"equity {snap['equity']:,.2f} | weight {snap['weight']:.2f} | dd {snap['drawdown']:.1%} | "
            f"{snap['risk_state']} | trades {snap['trades']} | alerts {snap['alerts']}"
            + (f" | stream {snap['stream']}" if snap.get("mode") != "replay" else ""))
