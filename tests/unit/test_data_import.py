"""Import: the real files round-trip exactly; Binance archive files (ms and µs, header or not, zipped,
with good and bad .CHECKSUM, overlapping monthly/daily); idempotent re-import; every bad input is one
clear DataError naming file and line, and leaves the store byte-for-byte unchanged."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coin_cli.config import Settings
from coin_cli.data.service import import_dataset, store_for
from coin_cli.errors import DataError
from tests.conftest import TEST_DATA

NOW = 2_000_000_000_000
FIVE_MIN = 300_000
ARCHIVE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                  "taker_buy_volume,taker_buy_quote_volume,ignore")


def _settings(tmp_path: Path, symbol: str = "BTCUSDT", interval: str = "5m") -> Settings:
    return Settings.model_validate({
        "paths": {"runs_dir": str(tmp_path / "runs"), "data_dir": str(tmp_path / "data")},
        "data": {"symbol": symbol, "interval": interval},
    })


def _real_rows(name: str = "binance_BTCUSDT_5m.csv") -> list[list[str]]:
    with open(TEST_DATA / name, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["open_time_ms", "open", "high", "low", "close", "volume"]
    return rows[1:]


def archive_lines(rows: list[list[str]], micro: bool = False, interval_ms: int = FIVE_MIN) -> list[str]:
    """Binance bulk-archive kline lines built from real OHLCV rows (12 columns)."""
    lines = []
    for t, o, h, low, c, v in rows:
        open_ms = int(t)
        open_t, close_t = (open_ms * 1000, (open_ms + interval_ms) * 1000 - 1) if micro else \
                          (open_ms, open_ms + interval_ms - 1)
        quote = f"{float(v) * float(c):.8f}"
        taker = f"{float(v) * 0.4:.8f}"
        lines.append(f"{open_t},{o},{h},{low},{c},{v},{close_t},{quote},{open_ms // interval_ms % 97},{taker},"
                     f"{float(taker) * float(c):.8f},0")
    return lines


def write_archive(folder: Path, name: str, lines: list[str], header: bool = False, zipped: bool = True,
                  checksum: str | None = "good") -> Path:
    text = "\n".join(([ARCHIVE_HEADER] if header else []) + lines) + "\n"
    csv_name = name + ".csv"
    if zipped:
        path = folder / (name + ".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(csv_name, text)
    else:
        path = folder / csv_name
        path.write_text(text)
    if checksum is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if checksum == "good" else "0" * 64
        (folder / (path.name + ".CHECKSUM")).write_text(f"{digest}  {path.name}")  # no trailing newline
    return path


@pytest.mark.parametrize(("name", "symbol", "interval", "rows"), [
    ("binance_BTCUSDT_5m.csv", "BTCUSDT", "5m", 7_142),
    ("binance_ETHUSDT_5m.csv", "ETHUSDT", "5m", 7_142),
    ("bittrex_ETCBTC_1m.csv", "ETCBTC", "1m", 3_000),
])
def test_real_files_round_trip_every_value(tmp_path: Path, name: str, symbol: str, interval: str, rows: int) -> None:
    settings = _settings(tmp_path, symbol, interval)
    summary = import_dataset(settings, [TEST_DATA / name], now_ms=NOW)
    assert summary["rows"] == rows and summary["source"] == "csv"
    stored = store_for(settings).read(symbol, interval)
    text = _real_rows(name)
    assert stored["open_time"].tolist() == [int(r[0]) for r in text]
    for k, col in enumerate(["open", "high", "low", "close", "volume"], start=1):
        expected = np.array([float(r[k]) for r in text])
        assert np.array_equal(stored[col].to_numpy(), expected), col


def test_archive_ms_and_us_with_and_without_header_zipped_or_not_store_the_same(tmp_path: Path) -> None:
    rows = _real_rows()[:3000]
    variants = {
        "ms-zip": dict(lines=archive_lines(rows)),
        "us-zip": dict(lines=archive_lines(rows, micro=True)),
        "us-header-csv": dict(lines=archive_lines(rows, micro=True), header=True, zipped=False),
        "ms-header-zip-nochecksum": dict(lines=archive_lines(rows), header=True, checksum=None),
    }
    stored = {}
    for label, spec in variants.items():
        folder = tmp_path / label
        folder.mkdir()
        path = write_archive(folder, "BTCUSDT-5m-2020-12", **spec)
        settings = _settings(folder)
        summary = import_dataset(settings, [path], now_ms=NOW)
        assert summary["source"] == "binance-archive"
        assert summary["microsecond_files"] == (1 if label.startswith("us") else 0)
        assert summary["checksums_verified"] == (0 if "nochecksum" in label else 1)
        stored[label] = store_for(settings).read("BTCUSDT", "5m")
    reference = stored["ms-zip"]
    assert len(reference) == 3000
    assert reference["open_time"].tolist() == [int(r[0]) for r in rows]
    assert reference["close_time"].tolist() == [int(r[0]) + FIVE_MIN - 1 for r in rows]
    assert reference["trades"].tolist() == [int(r[0]) // FIVE_MIN % 97 for r in rows]
    for label, frame in stored.items():
        assert frame.equals(reference), label


def test_units_are_detected_by_magnitude_not_by_date(tmp_path: Path) -> None:
    rows = _real_rows()[:50]  # December 2020: a µs file from before 2025 must still be read as µs
    path = write_archive(tmp_path, "BTCUSDT-5m-2020-12-01", archive_lines(rows, micro=True))
    summary = import_dataset(_settings(tmp_path), [path], now_ms=NOW)
    assert summary["microsecond_files"] == 1
    assert summary["first"] == "2020-12-01T00:00:00Z"


def test_monthly_and_daily_overlap_and_reimport_changes_nothing(tmp_path: Path) -> None:
    rows = _real_rows()[:2000]
    monthly = write_archive(tmp_path, "BTCUSDT-5m-2020-12", archive_lines(rows[:1500]))
    daily = write_archive(tmp_path, "BTCUSDT-5m-2020-12-06", archive_lines(rows[1400:]), checksum=None)
    settings = _settings(tmp_path)
    summary = import_dataset(settings, [monthly, daily], now_ms=NOW)
    assert summary["files"] == 2 and summary["rows_read"] == 2100 and summary["rows"] == 2000
    store = store_for(settings)
    before = store.path("BTCUSDT", "5m").read_bytes(), store.manifest_path("BTCUSDT", "5m").read_bytes()
    again = import_dataset(settings, [tmp_path], now_ms=NOW)  # the folder: both zips, CHECKSUM read beside
    assert again["rows_added"] == 0 and again["store_changed"] is False
    after = store.path("BTCUSDT", "5m").read_bytes(), store.manifest_path("BTCUSDT", "5m").read_bytes()
    assert before == after


def test_still_open_rows_are_dropped(tmp_path: Path) -> None:
    rows = _real_rows()[:10]
    path = write_archive(tmp_path, "BTCUSDT-5m-2020-12-01", archive_lines(rows))
    now = int(rows[7][0]) + 60_000  # inside bar 7
    summary = import_dataset(_settings(tmp_path), [path], now_ms=now)
    assert summary["rows"] == 7 and summary["still_open_dropped"] == 3


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    rows = _real_rows()[:200]
    good = archive_lines(rows)
    cases: dict[str, tuple[Path, str]] = {}

    def case(name: str, text: str, expect: str, suffix: str = ".csv") -> None:
        path = folder / f"{name}{suffix}"
        path.write_text(text)
        cases[name] = (path, expect)

    case("wrong_columns", "time,open,high,low,close,volume\n1,2,3,4,5,6\n", "line 1: unexpected column 'time'")
    case("missing_column", "open_time_ms,open,high,low,close\n1,2,3,4,5\n", "missing column(s) volume")
    case("text_in_number", "open_time_ms,open,high,low,close,volume\n" + "\n".join(
        ",".join(r) for r in rows[:5]) + f"\n{rows[5][0]},abc,1,1,1,1\n", "line 7: column open: 'abc' is not a number")
    case("empty", "", "empty file")
    case("header_only", "open_time_ms,open,high,low,close,volume\n", "no candle rows")
    case("six_headerless", "\n".join(",".join(r) for r in rows[:5]) + "\n", "6 columns and no header")
    case("short_row", "\n".join([*good[:10], good[10].rsplit(",", 3)[0], *good[11:20]]) + "\n",
         "line 11: 9 columns, expected 12")
    high, low = rows[3][2], rows[3][3]
    broken_ohlc = [*good[:3], good[3].replace(f",{low},", f",{float(high) + 5},", 1), *good[4:20]]
    case("ohlc", "\n".join(broken_ohlc) + "\n", "line 4")
    mixed = good[:5] + archive_lines(rows[5:10], micro=True) + good[10:20]
    case("mixed_units", "\n".join(mixed) + "\n", "line 6: open_time")
    seconds = [line.replace(line.split(",", 1)[0], str(int(line.split(",", 1)[0]) // 1000), 1) for line in good[:5]]
    case("seconds", "\n".join(seconds) + "\n", "not in ms or µs")
    case("wrong_interval", "open_time_ms,open,high,low,close,volume\n" + "\n".join(
        ",".join(r) for r in rows[:50:3]) + "\n", "15m apart, not 5m")

    zipped = write_archive(folder, "BTCUSDT-5m-2020-11", good)
    truncated = folder / "truncated.zip"
    truncated.write_bytes(zipped.read_bytes()[: len(zipped.read_bytes()) // 2])
    cases["truncated_zip"] = (truncated, "not a readable zip archive")
    bad_sum = write_archive(folder, "BTCUSDT-5m-2020-10", good, checksum="bad")
    cases["bad_checksum"] = (bad_sum, "does not match BTCUSDT-5m-2020-10.zip.CHECKSUM")
    other = write_archive(folder, "ETHUSDT-5m-2020-09", good)
    cases["other_symbol"] = (other, "file name says ETHUSDT")
    return cases


def test_every_bad_input_is_one_clear_error_and_the_store_is_untouched(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    import_dataset(settings, [TEST_DATA / "binance_BTCUSDT_5m.csv"], now_ms=NOW)
    store = store_for(settings)
    before = store.path("BTCUSDT", "5m").read_bytes(), store.manifest_path("BTCUSDT", "5m").read_bytes()
    folder = tmp_path / "bad"
    folder.mkdir()
    good = write_archive(folder, "BTCUSDT-5m-2020-08", archive_lines(_real_rows()[:100]))
    for name, (path, expect) in _bad_inputs(folder).items():
        with pytest.raises(DataError) as info:
            import_dataset(settings, [good, path], now_ms=NOW)  # a good file first: nothing may be written
        message = str(info.value)
        assert expect in message, (name, message)
        assert str(path) in message, (name, message)
        assert "\n" not in message, name
        after = store.path("BTCUSDT", "5m").read_bytes(), store.manifest_path("BTCUSDT", "5m").read_bytes()
        assert after == before, name
