"""Services behind `coin data ...` and the candle entry point for the rest of coin.

Each function takes resolved Settings (and the Run when there is one), does the work, and returns
a plain dict summary for render.emit. No typer, no rich.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.data.schema import ms_to_iso
from coin_cli.data.store import BOOTSTRAP, CandleStore
from coin_cli.errors import DataError, UsageError
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
    return file_lock(settings.paths.runs_dir, f"data-{d.exchange}-{d.symbol}-{d.interval}", what)


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


def import_dataset(settings: Settings, paths: list[Path], run: Run | None = None,
                   progress: Progress | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """`coin data import`: read and check every file first, then one atomic merge into the store."""
    from coin_cli.data.importers import read_files

    d = settings.data
    combined, files = read_files(paths, d.symbol, d.interval, now_ms, progress)
    source = "+".join(sorted({f.layout for f in files}))
    file_facts = [f.as_dict() for f in files]
    with dataset_lock(settings, "data import"):
        result = store_for(settings).merge(d.symbol, d.interval, combined, source,
                                           detail={"files": file_facts[:100], "file_count": len(files)})
    merge = result.pop("merge")
    if run is not None:
        run.write_json("import_files.json", file_facts)
        run.write_json("data_manifest.json", result)
    summary = _dataset_summary(result)
    summary.update({
        "files": len(files),
        "rows_read": sum(f.rows for f in files),
        "rows_added": merge["rows_added"],
        "rows_changed": merge["rows_changed"],
        "store_changed": merge["written"],
        "checksums_verified": sum(1 for f in files if f.checksum == "verified"),
        "microsecond_files": sum(1 for f in files if f.unit == "us"),
        "duplicates_dropped": sum(f.duplicates_dropped for f in files),
        "still_open_dropped": sum(f.open_dropped for f in files),
        "replaced_bootstrap": merge["replaced_bootstrap"],
    })
    return summary


def download_dataset(settings: Settings, start: str | None, end: str | None, run: Run | None = None,
                     progress: Progress | None = None) -> dict[str, Any]:
    """`coin data download`: page klines from binance.api_url into the store, resuming after the last bar."""
    import time

    from coin_cli.data.download import SOURCE, KlineDownloader, plan_segments
    from coin_cli.data.schema import normalize_interval, parse_time_ms
    from coin_cli.integrations.binance.rest import BinanceRESTClient

    d, b = settings.data, settings.binance
    interval = normalize_interval(d.interval)
    start_ms = parse_time_ms(start, "--start") if start else None
    # default end: now, with a margin for clock skew (the exchange never returns future candles and
    # the still-open one is dropped by server time)
    end_ms = parse_time_ms(end, "--end") if end else int(time.time() * 1000) + 600_000
    if start_ms is not None and start_ms >= end_ms:
        raise UsageError(f"--start {start} is not before --end {end or 'now'}")
    store = store_for(settings)
    with dataset_lock(settings, "data download"):
        writer = store.writer(d.symbol, interval, SOURCE, detail={"api_url": b.api_url})
        stored = None
        if writer.frame is not None and len(writer.frame):
            times = writer.frame["open_time"].to_numpy()
            stored = (int(times[0]), int(times[-1]))
        segments = plan_segments(start_ms, end_ms, interval, stored)
        rest = BinanceRESTClient.from_settings(b, max_weight_per_minute=d.max_weight_per_minute)
        downloader = KlineDownloader(rest, page_limit=d.download_page_limit, progress=progress)
        stats = downloader.download(d.symbol, interval, segments, writer) if segments else None
    manifest = writer.manifest or {}
    if run is not None and manifest:
        run.write_json("data_manifest.json", manifest)
    summary = _dataset_summary(manifest) if manifest else {"symbol": d.symbol, "interval": interval,
                                                           "rows": 0}
    summary.update({
        "resumed_after": ms_to_iso(stored[1]) if stored else None,
        "segments": len(segments),
        "pages": stats.pages if stats else 0,
        "store_writes": stats.writes if stats else 0,
        "rows_received": stats.rows_received if stats else 0,
        "rows_added": writer.rows - writer.initial_rows,
        "still_open_dropped": stats.open_dropped if stats else 0,
        "retries": stats.retries if stats else 0,
        "rate_limit_waits": stats.rate_waits if stats else 0,
        "max_used_weight": stats.max_used_weight if stats else 0,
        "waited_s": round(stats.waited_s, 3) if stats else 0.0,
        "replaced_bootstrap": writer.replaced_bootstrap and writer.written,
    })
    return summary


def validate_dataset(settings: Settings, run: Run | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """`coin data validate`: every check on the stored dataset; records the outcome in the manifest."""
    from coin_cli.data.store import _sha256
    from coin_cli.data.validate import validate_frame

    d = settings.data
    store = store_for(settings)
    frame = store.read(d.symbol, d.interval)
    manifest = store.manifest(d.symbol, d.interval) or {}
    report = validate_frame(frame, d.interval, now_ms)
    path = store.path(d.symbol, d.interval)
    sha_ok = manifest.get("sha256") == _sha256(path)
    if not sha_ok:
        report["checks"].append({"check": "manifest sha256", "status": "warning", "count": 1,
                                 "detail": f"{store.manifest_path(d.symbol, d.interval).name} does not describe "
                                           "the current parquet file (written by another tool?)"})
        report["warnings"] += 1
        if report["status"] == "ok":
            report["status"] = "warnings"
    gaps = report.pop("gaps")
    summary = {"exchange": settings.data.exchange, "symbol": d.symbol, "interval": d.interval,
               "source": manifest.get("source"), "path": str(path), **report}
    store.record_validation(d.symbol, d.interval, {
        "at": ms_to_iso(int(time_ms())), "status": report["status"], "errors": report["errors"],
        "warnings": report["warnings"]})
    if run is not None:
        run.write_json("validation.json", {**summary, "gaps": gaps})
        if report["errors"]:
            run.set_outcome("failed", 3)  # structural errors; gaps and zero volume are warnings
    return summary


def list_datasets(settings: Settings) -> dict[str, Any]:
    """`coin data ls`: every dataset under paths.data_dir (all exchanges), from the manifests."""
    root = settings.paths.data_dir
    datasets = []
    if root.is_dir():
        for exchange_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                store = CandleStore(root, exchange_dir.name)
            except UsageError:
                continue
            for symbol, interval in store.datasets():
                try:
                    manifest = store.manifest(symbol, interval)
                except (DataError, UsageError) as exc:
                    datasets.append({"exchange": exchange_dir.name, "symbol": symbol, "interval": interval,
                                     "error": str(exc)})
                    continue
                if manifest is not None:
                    datasets.append(_dataset_summary(manifest))
    return {"data_dir": str(root), "count": len(datasets), "datasets": datasets}


def time_ms() -> int:
    import time

    return int(time.time() * 1000)
