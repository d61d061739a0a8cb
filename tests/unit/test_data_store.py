"""CandleStore: atomic merge, de-duplication, idempotence, bootstrap/market separation, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coin_cli.data.bootstrap import generate_candles
from coin_cli.data.schema import CANDLE_COLUMNS, TRADES_UNKNOWN
from coin_cli.data.store import CandleStore
from coin_cli.errors import DataError, UsageError


def _ohlcv(times: list[int], base: float = 100.0) -> pd.DataFrame:
    n = len(times)
    close = base + np.arange(n, dtype=float)
    return pd.DataFrame({"open_time": times, "open": close, "high": close + 1, "low": close - 1,
                         "close": close, "volume": np.full(n, 2.5)})


def test_merge_writes_full_schema_and_reads_back(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, "binance")
    hour = 3_600_000
    manifest = store.merge("btcusdt", "1h", _ohlcv([0, hour, 2 * hour]), "csv")
    assert store.path("BTCUSDT", "1h") == tmp_path / "binance" / "BTCUSDT" / "1h.parquet"
    assert manifest["rows"] == 3 and manifest["source"] == "csv" and manifest["merge"]["rows_added"] == 3
    frame = store.read("BTCUSDT", "1h")
    assert list(frame.columns) == CANDLE_COLUMNS
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame["close_time"].tolist() == [hour - 1, 2 * hour - 1, 3 * hour - 1]
    assert frame["trades"].tolist() == [TRADES_UNKNOWN] * 3
    assert frame["quote_volume"].isna().all()
    assert store.read("BTCUSDT", "1h", start_ms=hour, end_ms=2 * hour)["open_time"].tolist() == [hour]


def test_merge_deduplicates_new_rows_win_and_rerun_changes_nothing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, "binance")
    hour = 3_600_000
    store.merge("BTCUSDT", "1h", _ohlcv([0, hour, 2 * hour]), "csv")
    update = _ohlcv([2 * hour, 4 * hour, 3 * hour], base=500.0)  # unsorted, overlaps one bar
    manifest = store.merge("BTCUSDT", "1h", update, "csv")
    assert manifest["merge"] == {"source": "csv", "rows_in": 3, "rows_added": 2, "rows_changed": 1,
                                 "written": True, "replaced_bootstrap": False}
    frame = store.read("BTCUSDT", "1h")
    assert frame["open_time"].tolist() == [0, hour, 2 * hour, 3 * hour, 4 * hour]
    assert frame["close"].tolist() == [100.0, 101.0, 500.0, 502.0, 501.0]
    assert manifest["gaps"]["events"] == 0
    before = store.path("BTCUSDT", "1h").read_bytes(), store.manifest_path("BTCUSDT", "1h").read_bytes()
    again = store.merge("BTCUSDT", "1h", update, "csv")
    assert again["merge"]["written"] is False and again["merge"]["rows_added"] == 0
    after = store.path("BTCUSDT", "1h").read_bytes(), store.manifest_path("BTCUSDT", "1h").read_bytes()
    assert before == after


def test_manifest_counts_gaps(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, "binance")
    minute = 60_000
    manifest = store.merge("ETHUSDT", "1m", _ohlcv([0, minute, 5 * minute, 6 * minute, 9 * minute]), "csv")
    assert manifest["gaps"]["events"] == 2
    assert manifest["gaps"]["missing_bars"] == 5
    assert manifest["gaps"]["largest"]["missing"] == 3
    assert manifest["gaps"]["largest"]["after"] == "1970-01-01T00:01:00Z"


def test_bootstrap_never_mixes_with_market_candles(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, "binance")
    synthetic = generate_candles(50, "1h", seed=1)
    store.replace("BTCUSDT", "1h", synthetic, "bootstrap")
    market = _ohlcv([1_700_000_000_000 - 1_700_000_000_000 % 3_600_000])
    manifest = store.merge("BTCUSDT", "1h", market, "binance-rest")
    assert manifest["rows"] == 1 and manifest["source"] == "binance-rest"
    assert manifest["merge"]["replaced_bootstrap"] is True
    with pytest.raises(DataError, match="refusing"):
        store.replace("BTCUSDT", "1h", synthetic, "bootstrap")
    with pytest.raises(DataError, match="refusing"):
        store.merge("BTCUSDT", "1h", synthetic, "bootstrap")
    assert store.read("BTCUSDT", "1h")["open_time"].tolist() == market["open_time"].tolist()


def test_missing_and_corrupt_files_are_data_errors_naming_the_path(tmp_path: Path) -> None:
    store = CandleStore(tmp_path, "binance")
    with pytest.raises(DataError, match=r"BTCUSDT/1h\.parquet: no BTCUSDT 1h candles"):
        store.read("BTCUSDT", "1h")
    assert store.manifest("BTCUSDT", "1h") is None
    path = store.path("BTCUSDT", "1h")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"1h\.parquet: unreadable parquet"):
        store.read("BTCUSDT", "1h")


def test_bad_names_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        CandleStore(tmp_path, "../etc")
    store = CandleStore(tmp_path, "binance")
    with pytest.raises(UsageError, match="symbol"):
        store.path("../BTC", "1h")
    with pytest.raises(UsageError, match="interval"):
        store.path("BTCUSDT", "7m")


def test_stream_candles_reach_the_store_at_most_every_interval_and_at_the_end(tmp_path: Path) -> None:
    """paper/live's CandleRecorder: the store file is rewritten whole, so not at every bar."""
    from coin_cli.runtime.events import Candle
    from coin_cli.runtime.paper import CandleRecorder

    store, minute = CandleStore(tmp_path, "binance"), 60_000
    store.merge("BTCUSDT", "1m", _ohlcv([0, minute]), "csv")
    now = [0.0]
    recorder = CandleRecorder(store.writer("BTCUSDT", "1m", "binance-stream"), every_s=60.0, clock=lambda: now[0])

    def bar(i: int) -> Candle:
        return Candle(i * minute, 1.0, 2.0, 0.5, 1.5, 3.0, (i + 1) * minute - 1)

    recorder.add(bar(1))                       # already stored: not recorded again
    for i in (2, 3):
        recorder.add(bar(i))
        recorder.flush()                       # a ledger commit per bar ...
    assert len(store.read("BTCUSDT", "1m")) == 2   # ... but no rewrite inside the minute
    now[0] = 61.0
    recorder.add(bar(4))
    recorder.flush()
    assert store.read("BTCUSDT", "1m")["open_time"].tolist() == [i * minute for i in range(5)]
    recorder.add(bar(5))
    recorder.flush()
    assert len(store.read("BTCUSDT", "1m")) == 5
    recorder.flush(force=True)                 # the end of the run
    assert len(store.read("BTCUSDT", "1m")) == 6 and recorder.appended == 4 and recorder.writes == 2
