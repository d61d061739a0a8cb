"""Services behind `coin data ...` and the candle entry point for the rest of coin.

Each function takes resolved Settings (and the Run when there is one), does the work, and returns
a plain dict summary for render.emit. No typer, no rich.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coin_cli.data.store import BOOTSTRAP, CandleStore
from coin_cli.runs import file_lock

if TYPE_CHECKING:
    import pandas as pd

    from coin_cli.config import Settings
    from coin_cli.runs import Run

log = logging.getLogger("coin.data")

Progress = Callable[[int, int | None, str | None], None]


def store_for(settings: Settings) -> CandleStore:
    return CandleStore(settings.paths.data_dir, settings.data.exchange)


def dataset_lock(settings: Settings, what: str) -> Any:
    """The per-dataset lock shared by download, import and bootstrap (writers must not overlap)."""
    d = settings.data
    return file_lock(settings.paths.runs_dir, f"data-{d.exchange}-{d.symbol.upper()}-{d.interval}", what)


def load_or_bootstrap(settings: Settings) -> tuple[pd.DataFrame, dict[str, Any], bool]:
    """Candles of settings.data.{exchange,symbol,interval}; bootstrap candles when the store has none.

    Returns (candles, manifest, generated). A stored but unreadable dataset is a DataError,
    never silently replaced by synthetic data.
    """
    store = store_for(settings)
    d = settings.data
    if store.exists(d.symbol, d.interval):
        frame = store.read(d.symbol, d.interval)
        manifest = store.manifest(d.symbol, d.interval)
        assert manifest is not None
        return frame, manifest, False
    with dataset_lock(settings, "data bootstrap"):
        if store.exists(d.symbol, d.interval):  # another process made it while we waited
            return store.read(d.symbol, d.interval), store.manifest(d.symbol, d.interval) or {}, False
        frame, manifest = _bootstrap(store, settings)
    log.warning("no %s %s candles in %s: generated %d synthetic bootstrap candles (seed %d)",
                d.symbol, d.interval, settings.paths.data_dir, len(frame), d.bootstrap_seed)
    return frame, manifest, True


def bootstrap_dataset(settings: Settings, run: Run | None = None, start_ms: int | None = None) -> dict[str, Any]:
    """`coin data bootstrap`: (re)generate the synthetic dataset; refuses to overwrite market data."""
    store = store_for(settings)
    with dataset_lock(settings, "data bootstrap"):
        _, manifest = _bootstrap(store, settings, start_ms)
    summary = _dataset_summary(manifest)
    summary["seed"] = settings.data.bootstrap_seed
    if run is not None:
        run.write_json("data_manifest.json", manifest)
    return summary


def _bootstrap(store: CandleStore, settings: Settings, start_ms: int | None = None) -> tuple[pd.DataFrame, dict]:
    from coin_cli.data.bootstrap import generate_candles

    d = settings.data
    frame = generate_candles(d.bootstrap_rows, d.interval, d.bootstrap_seed, start_ms)
    detail = {"seed": d.bootstrap_seed, "rows": d.bootstrap_rows, "generator": "coin_cli.data.bootstrap"}
    manifest = store.replace(d.symbol, d.interval, frame, BOOTSTRAP, detail=detail)
    return frame, manifest


def _dataset_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """The flat part of a manifest that commands show."""
    gaps = manifest.get("gaps") or {}
    largest = gaps.get("largest") or {}
    return {
        "exchange": manifest.get("exchange"),
        "symbol": manifest.get("symbol"),
        "interval": manifest.get("interval"),
        "source": manifest.get("source"),
        "rows": manifest.get("rows"),
        "first": manifest.get("first"),
        "last": manifest.get("last"),
        "gap_events": gaps.get("events"),
        "missing_bars": gaps.get("missing_bars"),
        "largest_gap": largest.get("missing"),
        "zero_volume": manifest.get("zero_volume"),
        "path": manifest.get("path"),
        "sha256": manifest.get("sha256"),
    }
