"""`coin stream` commands. Parse options -> one service call -> render."""

from __future__ import annotations

import typer

from coin_cli.commands._options import app_context, complete_interval, complete_symbol

app = typer.Typer(no_args_is_help=True)


@app.command("market")
def market(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="Trading pair, e.g. BTCUSDT (data.symbol).",
                                      autocompletion=complete_symbol),
    interval: str | None = typer.Option(None, "--interval", help="Kline interval: 1s 1m 5m 1h ... (data.interval).",
                                        autocompletion=complete_interval),
    max_events: int | None = typer.Option(None, "--max-events", help="Stop after this many closed klines."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    json_mode: bool = typer.Option(False, "--json", help="One JSON object per event, then the summary."),
) -> None:
    """Closed klines from the Binance market stream (binance.stream_url); gaps filled over REST."""
    from coin_cli.data.schema import normalize_interval

    app_ctx = app_context(ctx)
    settings = app_ctx.settings(data__symbol=(symbol, "--symbol"),
                                data__interval=(normalize_interval(interval) if interval else None, "--interval"))
    from coin_cli import render
    from coin_cli.integrations.binance.stream_service import stream_market

    with app_ctx.open_run(settings, "stream", json_mode) as run, render.kline_stream(json_mode) as show:
        result = stream_market(settings, run, max_events=max_events, duration=duration, on_event=show)
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("stream market", result)], run_id=run.run_id)
    if run.exit_code:  # interrupted: the summary is out, the exit code says how it ended
        raise typer.Exit(run.exit_code)


@app.command("user")
def user(
    ctx: typer.Context,
    max_events: int | None = typer.Option(None, "--max-events", help="Stop after this many account events."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    json_mode: bool = typer.Option(False, "--json", help="One JSON object per event, then the summary."),
) -> None:
    """The account's user data stream (binance.ws_api_url; needs BINANCE_API_KEY/BINANCE_API_SECRET)."""
    app_ctx = app_context(ctx)
    settings = app_ctx.settings()
    from coin_cli import render
    from coin_cli.config import Secrets
    from coin_cli.integrations.binance.user_stream_service import require_keys, stream_user

    require_keys(Secrets.from_env())   # exit 2 before a run folder exists
    with app_ctx.open_run(settings, "stream", json_mode) as run, render.user_stream(json_mode) as show:
        result = stream_user(settings, run, max_events=max_events, duration=duration, on_event=show)
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("stream user", result)], run_id=run.run_id)
    if run.exit_code:  # interrupted: the summary is out, the exit code says how it ended
        raise typer.Exit(run.exit_code)
