"""`coin data`: download, import, bootstrap, validate, ls. Parse options -> one service call -> render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coin_cli.commands._options import JSON_OPTION, app_context, complete_interval, complete_symbol

app = typer.Typer(no_args_is_help=True)

SYMBOL_OPTION = typer.Option(None, "--symbol", help="Trading pair, e.g. BTCUSDT (data.symbol).",
                             autocompletion=complete_symbol)
INTERVAL_OPTION = typer.Option(None, "--interval", help="Kline interval: 1m 5m 15m 1h 4h 1d ... (data.interval).",
                               autocompletion=complete_interval)


def _dataset_settings(ctx: typer.Context, symbol: str | None, interval: str | None, **more: tuple[Any, str]) -> Any:
    from coin_cli.data.schema import normalize_interval

    if interval is not None:
        interval = normalize_interval(interval)
    return app_context(ctx).settings(data__symbol=(symbol, "--symbol"),
                                     data__interval=(interval, "--interval"), **more)


@app.command("download")
def download(
    ctx: typer.Context,
    symbol: str | None = SYMBOL_OPTION,
    interval: str | None = INTERVAL_OPTION,
    start: str | None = typer.Option(None, "--start", help="First open time (YYYY-MM-DD, ISO or ms); "
                                     "optional when the store already has candles (resumes after the last)."),
    end: str | None = typer.Option(None, "--end", help="Stop before this open time (default: now)."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Download klines from Binance REST (binance.api_url) into the store; resumes where it stopped."""
    app_ctx = app_context(ctx)
    settings = _dataset_settings(ctx, symbol, interval)
    from coin_cli import render
    from coin_cli.data.service import download_dataset

    with app_ctx.open_run(settings, "data", json_mode) as run, render.progress("download") as bar:
        result = download_dataset(settings, start, end, run, progress=bar)
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("download", result)], run_id=run.run_id)


@app.command("import")
def import_(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Binance archive .zip/.csv files, generic CSV files, or folders."),
    symbol: str | None = SYMBOL_OPTION,
    interval: str | None = INTERVAL_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Import candle files (checked first; a bad file leaves the store untouched)."""
    app_ctx = app_context(ctx)
    settings = _dataset_settings(ctx, symbol, interval)
    from coin_cli import render
    from coin_cli.data.service import import_dataset

    with app_ctx.open_run(settings, "data", json_mode) as run, render.progress("import") as bar:
        result = import_dataset(settings, paths, run, progress=bar)
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("import", result)], run_id=run.run_id)


@app.command("bootstrap")
def bootstrap(
    ctx: typer.Context,
    symbol: str | None = SYMBOL_OPTION,
    interval: str | None = INTERVAL_OPTION,
    rows: int | None = typer.Option(None, "--rows", help="Candles to generate (data.bootstrap_rows)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (data.bootstrap_seed)."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Generate seeded synthetic candles (marked source: bootstrap); same seed, same file."""
    app_ctx = app_context(ctx)
    settings = _dataset_settings(ctx, symbol, interval, data__bootstrap_rows=(rows, "--rows"),
                                 data__bootstrap_seed=(seed, "--seed"))
    from coin_cli import render
    from coin_cli.data.service import bootstrap_dataset

    with app_ctx.open_run(settings, "data", json_mode) as run:
        result = bootstrap_dataset(settings, run)
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("bootstrap", result)], run_id=run.run_id)


@app.command("validate")
def validate(
    ctx: typer.Context,
    symbol: str | None = SYMBOL_OPTION,
    interval: str | None = INTERVAL_OPTION,
    json_mode: bool = JSON_OPTION,
) -> None:
    """Check a stored dataset; gaps and zero volume are warnings, structural errors exit 3."""
    app_ctx = app_context(ctx)
    settings = _dataset_settings(ctx, symbol, interval)
    from coin_cli import render
    from coin_cli.data.service import validate_dataset

    with app_ctx.open_run(settings, "data", json_mode) as run:
        result = validate_dataset(settings, run)
    failed = run.exit_code != 0
    summary = {k: v for k, v in result.items() if k != "checks"}
    checks = render.rows_table("checks", ["check", "status", "count", "detail"],
                               [[c["check"], c["status"], c["count"], c["detail"]] for c in result["checks"]])
    if failed and not json_mode:
        render.error_line(f"{result['path']}: {result['errors']} check(s) failed; see the table")
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("validate", summary), checks], run_id=run.run_id)
    if failed:
        raise typer.Exit(run.exit_code)


@app.command("ls")
def ls(ctx: typer.Context, json_mode: bool = JSON_OPTION) -> None:
    """List the datasets in the store: rows, range, gaps, source."""
    settings = app_context(ctx).settings()
    from coin_cli import render
    from coin_cli.data.service import list_datasets

    result = list_datasets(settings)
    columns = ["exchange", "symbol", "interval", "rows", "first", "last", "gap_events", "missing_bars", "source"]
    table = render.rows_table(f"datasets in {result['data_dir']}", columns,
                              [[d.get(c, d.get("error") if c == "source" else None) for c in columns]
                               for d in result["datasets"]])
    render.emit(result, json_mode=json_mode, tables=[table])
