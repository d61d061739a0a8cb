"""Options shared by several commands, and shell completion of their values.

Completion runs on every Tab press, so it reads folder names only (no settings, no pandas): the
candle store is `<data dir>/<exchange>/<SYMBOL>/<interval>.parquet`, a run is `<runs dir>/<run_id>/`.
The folders are the root's --data-dir / --runs-dir when typed, else the default ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from coin_cli.context import AppContext

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of tables.")
DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR = Path("data"), Path("runs")   # paths.data_dir / paths.runs_dir


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, AppContext) else AppContext()


def complete_symbol(ctx: typer.Context, incomplete: str) -> list[str]:
    """Symbols with candles in the store."""
    found = {symbol for _, symbol, _ in _datasets(ctx)}
    return sorted(s for s in found if s.startswith(incomplete.upper()))


def complete_interval(ctx: typer.Context, incomplete: str) -> list[str]:
    """Intervals in the store (of the --symbol typed before, if any), else Binance's intervals."""
    symbol = str(ctx.params.get("symbol") or "").upper()
    found = {interval for _, sym, interval in _datasets(ctx) if not symbol or sym == symbol}
    if not found:
        from coin_cli.data.schema import INTERVALS

        found = set(INTERVALS)
    return sorted(i for i in found if i.startswith(incomplete))


def complete_run_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run ids in the runs folder, newest first."""
    return _run_ids(ctx, incomplete, "")


def complete_train_run(ctx: typer.Context, incomplete: str) -> list[str]:
    """Train run ids in the runs folder, newest first."""
    return _run_ids(ctx, incomplete, "-train-")


def _root_dir(ctx: typer.Context, name: str, default: Path) -> Path:
    value = ctx.find_root().params.get(name) or os.environ.get(f"COIN_PATHS__{name.upper()}")
    return Path(value) if value else default


def _datasets(ctx: typer.Context) -> list[tuple[str, str, str]]:
    """(exchange, symbol, interval) of every parquet file in the store."""
    found = []
    for exchange in _subfolders(_root_dir(ctx, "data_dir", DEFAULT_DATA_DIR)):
        for symbol in _subfolders(exchange):
            try:
                names = os.listdir(symbol)
            except OSError:
                continue
            found.extend((exchange.name, symbol.name, name.removesuffix(".parquet"))
                         for name in names if name.endswith(".parquet"))
    return found


def _run_ids(ctx: typer.Context, incomplete: str, kind: str) -> list[str]:
    runs = _subfolders(_root_dir(ctx, "runs_dir", DEFAULT_RUNS_DIR))
    return sorted((r.name for r in runs if kind in r.name and r.name.startswith(incomplete)), reverse=True)


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []
