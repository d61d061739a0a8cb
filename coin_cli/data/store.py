"""The candle store: `data/<exchange>/<SYMBOL>/<interval>.parquet` plus `<interval>.manifest.json`.

Writes are atomic (temp file + rename, coin_cli.fsio); a merge de-duplicates by open_time with
the newer rows winning, and a merge that changes no value leaves both files untouched. Synthetic
(`bootstrap`) candles never mix with market candles: market data replaces them, and bootstrap
refuses to overwrite a market dataset.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.data.gaps import gap_summary
from coin_cli.data.schema import CANDLE_COLUMNS, INT_COLUMNS, conform, ms_to_iso, normalize_interval
from coin_cli.errors import DataError, UsageError
from coin_cli.fsio import atomic_temp_path, atomic_write_json, commit_temp

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger("coin.data")

SCHEMA_VERSION = 1
BOOTSTRAP = "bootstrap"
MAX_SOURCE_HISTORY = 50
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,39}$")
_EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")

# Pinned writer options: the same table always gives the same bytes (no timestamps in the
# metadata; the writer string only changes with the pyarrow version).
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "lz4",  # zstd files are ~25% smaller but decode 2-3x slower; reads dominate
    "use_dictionary": False,
    "write_statistics": ["open_time"],
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CandleStore:
    """Candle datasets of one exchange namespace under `data_dir`."""

    def __init__(self, data_dir: Path, exchange: str):
        if not _EXCHANGE_RE.match(exchange):
            raise UsageError(f"exchange {exchange!r}: use lower-case letters, digits, '-' or '_'")
        self.data_dir = Path(data_dir)
        self.exchange = exchange

    # ---- paths -------------------------------------------------------------------------------

    def path(self, symbol: str, interval: str) -> Path:
        return self.data_dir / self.exchange / _symbol(symbol) / f"{normalize_interval(interval)}.parquet"

    def manifest_path(self, symbol: str, interval: str) -> Path:
        return self.path(symbol, interval).with_suffix(".manifest.json")

    def exists(self, symbol: str, interval: str) -> bool:
        return self.path(symbol, interval).is_file()

    def datasets(self) -> list[tuple[str, str]]:
        """(symbol, interval) of every dataset in this exchange namespace, sorted."""
        root = self.data_dir / self.exchange
        if not root.is_dir():
            return []
        found = []
        for file in sorted(root.glob("*/*.parquet")):
            found.append((file.parent.name, file.stem))
        return found

    # ---- reading -----------------------------------------------------------------------------

    def read(self, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
        """Candles with start_ms <= open_time < end_ms (either bound optional), sorted, RangeIndex."""
        table = self._read_table(symbol, interval)
        return _slice(table_to_frame(table), start_ms, end_ms)

    def _read_table(self, symbol: str, interval: str) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.path(symbol, interval)
        if not path.is_file():
            raise DataError(
                f"{path}: no {_symbol(symbol)} {normalize_interval(interval)} candles in the store "
                "(get some with `coin data download`, `coin data import` or `coin data bootstrap`)"
            )
        try:
            table = pq.read_table(path, memory_map=True)  # safe: writers replace the file, never edit it
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: unreadable parquet file ({_first_line(exc)})") from None
        missing = [c for c in CANDLE_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"{path}: not a candle table (missing column(s) {', '.join(missing)})")
        return table.select(CANDLE_COLUMNS)

    def manifest(self, symbol: str, interval: str) -> dict[str, Any] | None:
        """The dataset's manifest; rebuilt (and saved) when the parquet file has none. None: no dataset."""
        import json

        path = self.path(symbol, interval)
        if not path.is_file():
            return None
        mpath = self.manifest_path(symbol, interval)
        try:
            return json.loads(mpath.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable manifest (%s); rebuilding it", mpath, exc)
        frame = self.read(symbol, interval)
        manifest = self._build_manifest(symbol, interval, frame, _sha256(path), path.stat().st_size,
                                        sources=[{"source": "unknown", "at": _now_iso(), "rows_added": len(frame)}])
        atomic_write_json(mpath, manifest)
        return manifest

    # ---- writing -----------------------------------------------------------------------------

    def merge(self, symbol: str, interval: str, frame: pd.DataFrame, source: str,
              detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge `frame` into the dataset (atomic; de-duplicated by open_time, new rows win).

        Returns the manifest plus a `merge` entry (rows_in, rows_added, rows_changed, written,
        replaced_bootstrap) that is not stored. A merge that changes nothing writes nothing.
        """
        return self.writer(symbol, interval, source, detail).add(frame)

    def writer(self, symbol: str, interval: str, source: str, detail: dict[str, Any] | None = None) -> DatasetWriter:
        """A writer that merges several batches (download pages) into the dataset, one atomic write each."""
        return DatasetWriter(self, symbol, interval, source, detail)

    def replace(self, symbol: str, interval: str, frame: pd.DataFrame, source: str,
                detail: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write `frame` as the whole dataset (sorted, de-duplicated). Used by bootstrap."""
        interval = normalize_interval(interval)
        existing_manifest = self.manifest(symbol, interval)
        if source == BOOTSTRAP and existing_manifest is not None and existing_manifest.get("source") != BOOTSTRAP:
            raise DataError(
                f"{self.path(symbol, interval)}: holds market candles (source {existing_manifest.get('source')}); "
                "refusing to overwrite them with synthetic bootstrap candles (use another --symbol or --data-dir)"
            )
        clean = merge_frames(None, conform(frame, interval))
        entry: dict[str, Any] = {"source": source, "at": _now_iso(), "rows_in": len(frame), "rows_added": len(clean)}
        if detail:
            entry["detail"] = detail
        return self._write(symbol, interval, clean, [entry])

    def record_validation(self, symbol: str, interval: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Store the outcome of `coin data validate` in the manifest (`last_validated`)."""
        manifest = self.manifest(symbol, interval)
        if manifest is None:
            raise DataError(f"{self.path(symbol, interval)}: no dataset to record a validation for")
        manifest["last_validated"] = summary
        atomic_write_json(self.manifest_path(symbol, interval), manifest)
        return manifest

    def _write(self, symbol: str, interval: str, frame: pd.DataFrame, sources: list[dict[str, Any]]) -> dict[str, Any]:
        path = self.path(symbol, interval)
        tmp = atomic_temp_path(path)
        try:
            write_parquet(frame, tmp)
            digest, size = _sha256(tmp), tmp.stat().st_size
            commit_temp(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        manifest = self._build_manifest(symbol, interval, frame, digest, size, sources[-MAX_SOURCE_HISTORY:])
        atomic_write_json(self.manifest_path(symbol, interval), manifest)
        log.debug("%s: wrote %d rows", path, len(frame))
        return manifest

    def _build_manifest(self, symbol: str, interval: str, frame: pd.DataFrame, digest: str, size: int,
                        sources: list[dict[str, Any]]) -> dict[str, Any]:
        times = frame["open_time"].to_numpy()
        first = int(times[0]) if len(times) else None
        last = int(times[-1]) if len(times) else None
        return {
            "schema_version": SCHEMA_VERSION,
            "exchange": self.exchange,
            "symbol": _symbol(symbol),
            "interval": normalize_interval(interval),
            "path": str(self.path(symbol, interval)),
            "source": _source_label(sources),
            "sources": sources,
            "rows": len(frame),
            "first_open_time": first,
            "last_open_time": last,
            "first": ms_to_iso(first),
            "last": ms_to_iso(last),
            "gaps": gap_summary(times, interval),
            "zero_volume": int((frame["volume"].to_numpy() == 0).sum()),
            "sha256": digest,
            "bytes": size,
            "updated": _now_iso(),
            "last_validated": None,
        }


class DatasetWriter:
    """Merges batches into one dataset, keeping the current table in memory so each batch costs
    one write and no re-read. Applies the bootstrap/market separation once, at the start."""

    def __init__(self, store: CandleStore, symbol: str, interval: str, source: str,
                 detail: dict[str, Any] | None = None):
        self.store, self.symbol, self.interval = store, symbol, normalize_interval(interval)
        self.source = source
        path = store.path(symbol, interval)
        existing_manifest = store.manifest(symbol, interval)
        self.replaced_bootstrap = False
        self.frame: pd.DataFrame | None = None
        self.manifest = existing_manifest
        self.history: list[dict[str, Any]] = []
        if existing_manifest is not None:
            old_source = existing_manifest.get("source")
            if source == BOOTSTRAP and old_source != BOOTSTRAP:
                raise DataError(
                    f"{path}: holds market candles (source {old_source}); "
                    "refusing to mix synthetic bootstrap candles into them (use another --symbol or --data-dir)"
                )
            if old_source == BOOTSTRAP and source != BOOTSTRAP:
                self.replaced_bootstrap = True
            else:
                self.frame = store.read(symbol, interval)
                self.history = list(existing_manifest.get("sources", []))
        self.entry: dict[str, Any] = {"source": source, "at": _now_iso(), "rows_in": 0, "rows_added": 0}
        if detail:
            self.entry["detail"] = detail
        if self.replaced_bootstrap:
            self.entry["replaced_bootstrap"] = True
        self.initial_rows = 0 if self.frame is None else len(self.frame)
        self.written = False

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    def add(self, frame: pd.DataFrame) -> dict[str, Any]:
        """Merge one batch and write the dataset when a value changed; returns manifest + `merge`."""
        new = conform(frame, self.interval)
        self.entry["rows_in"] += len(new)
        before = self.frame
        absent, changed = (len(new), 0) if before is None else _overlap(before, new)
        if before is not None and absent == 0 and changed == 0:  # every row already stored as is
            result = dict(self.manifest or {})
            result["merge"] = self._merge_info(len(new), 0, 0, written=False)
            return result
        merged = merge_frames(before, new)
        if self.replaced_bootstrap and not self.written:
            log.warning("%s: replacing synthetic bootstrap candles with %s candles",
                        self.store.path(self.symbol, self.interval), self.source)
        added = len(merged) - (0 if before is None else len(before))
        self.entry["at"] = _now_iso()
        self.entry["rows_added"] = len(merged) - self.initial_rows
        self.manifest = self.store._write(self.symbol, self.interval, merged, [*self.history, self.entry])
        self.frame = merged
        self.written = True
        result = dict(self.manifest)
        result["merge"] = self._merge_info(len(new), added, changed, written=True)
        return result

    def _merge_info(self, rows_in: int, added: int, changed: int, written: bool) -> dict[str, Any]:
        return {"source": self.source, "rows_in": rows_in, "rows_added": added, "rows_changed": changed,
                "written": written, "replaced_bootstrap": self.replaced_bootstrap}


# ---- frame helpers (also used by import and download) --------------------------------------------

def merge_frames(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, sort by open_time and keep the LAST row of each open_time (new rows win).

    May return `new` itself (no copy) when there is nothing to merge and it is already in order.
    Works column by column so a merge of two million-row tables holds one extra column at a time.
    """
    import pandas as pd

    new_t = new["open_time"].to_numpy()
    new_sorted = len(new_t) < 2 or bool(np.all(new_t[1:] > new_t[:-1]))
    if existing is None:
        if new_sorted:
            return new  # already sorted and unique (the common case for a fresh table): no copy
        parts = [new]
    else:
        old_t = existing["open_time"].to_numpy()
        if new_sorted and (not len(old_t) or not len(new_t) or new_t[0] > old_t[-1]):  # a pure append
            return pd.DataFrame({c: np.concatenate([existing[c].to_numpy(), new[c].to_numpy()])
                                 for c in CANDLE_COLUMNS}, copy=False)
        parts = [existing, new]
    times = np.concatenate([p["open_time"].to_numpy() for p in parts])
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = sorted_times[1:] != sorted_times[:-1]
    index = order[keep]
    del times, order, sorted_times, keep
    out = {}
    for col in CANDLE_COLUMNS:
        values = np.concatenate([p[col].to_numpy() for p in parts]) if len(parts) > 1 else parts[0][col].to_numpy()
        out[col] = values[index]
    return pd.DataFrame(out, copy=False)


def _overlap(existing: pd.DataFrame, new: pd.DataFrame) -> tuple[int, int]:
    """(rows of `new` whose open_time is not stored, rows stored with different values)."""
    old_t = existing["open_time"].to_numpy()
    new_t = new["open_time"].to_numpy()
    if not len(old_t):
        return len(new_t), 0
    pos = np.searchsorted(old_t, new_t)
    pos_c = np.minimum(pos, len(old_t) - 1)
    hit = (pos < len(old_t)) & (old_t[pos_c] == new_t)
    absent = int(len(new_t) - hit.sum())
    if not hit.any():
        return absent, 0
    at = pos_c[hit]
    differs = np.zeros(len(at), dtype=bool)
    for col in CANDLE_COLUMNS[1:]:
        x = existing[col].to_numpy()[at]
        y = new[col].to_numpy()[hit]
        same = (x == y) | (np.isnan(x) & np.isnan(y)) if x.dtype.kind == "f" else x == y
        differs |= ~same
    return absent, int(differs.sum())


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """One writable numpy array per column, no block consolidation (the fastest honest copy)."""
    import pandas as pd

    return pd.DataFrame({name: np.array(table.column(name)) for name in CANDLE_COLUMNS}, copy=False)


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    fields = [pa.field(c, pa.int64() if c in INT_COLUMNS else pa.float64(), nullable=False) for c in CANDLE_COLUMNS]
    arrays = [pa.array(frame[c].to_numpy(), type=f.type) for c, f in zip(CANDLE_COLUMNS, fields, strict=True)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a candle table with the pinned options (byte-identical for identical tables)."""
    import pyarrow.parquet as pq

    pq.write_table(frame_to_table(frame), path, **_PARQUET_OPTIONS)


def _slice(frame: pd.DataFrame, start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    if start_ms is None and end_ms is None:
        return frame
    times = frame["open_time"].to_numpy()
    lo = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
    hi = len(times) if end_ms is None else int(np.searchsorted(times, end_ms, side="left"))
    return frame.iloc[lo:hi].reset_index(drop=True)


def _source_label(sources: list[dict[str, Any]]) -> str:
    names = sorted({str(s.get("source")) for s in sources})
    return "+".join(names) if names else "unknown"


def _symbol(symbol: str) -> str:
    upper = symbol.strip().upper()
    if not _SYMBOL_RE.match(upper):
        raise UsageError(f"symbol {symbol!r}: use letters and digits only, e.g. BTCUSDT")
    return upper


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
