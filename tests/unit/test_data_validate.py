"""Validation: the real files' gaps and zero-volume bars are reported exactly (counts from
tests/data/README.md); every structural problem is an error that names the row."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from coin_cli.data.bootstrap import generate_candles
from coin_cli.data.importers import read_files
from coin_cli.data.validate import validate_frame
from tests.conftest import TEST_DATA

NOW = 2_000_000_000_000  # 2033: every candle in these files is closed


def _real(name: str, interval: str) -> pd.DataFrame:
    frame, _ = read_files([TEST_DATA / name], "BTCUSDT", interval, now_ms=NOW)
    return frame


@pytest.mark.parametrize("name", ["binance_BTCUSDT_5m.csv", "binance_ETHUSDT_5m.csv"])
def test_binance_files_gaps_and_zero_volume_exactly(name: str) -> None:
    report = validate_frame(_real(name, "5m"), "5m", now_ms=NOW)
    assert report["errors"] == 0 and report["status"] == "warnings"
    # the excerpt's two maintenance windows and the zero-volume run before the first (tests/data/README.md)
    assert report["gap_events"] == 2 and report["missing_bars"] == 58
    assert report["zero_volume"] == 10
    listed = [(g["after"], g["before"], g["missing"]) for g in report["gaps"]["list"]]
    assert listed == [
        ("2020-12-21T14:05:00Z", "2020-12-21T18:00:00Z", 46),
        ("2020-12-25T01:55:00Z", "2020-12-25T03:00:00Z", 12),
    ]
    assert report["largest_gap"] == 46 and report["largest_gap_after"] == "2020-12-21T14:05:00Z"


def test_bittrex_file_gap_size_distribution_exactly() -> None:
    frame = _real("bittrex_ETCBTC_1m.csv", "1m")
    assert len(frame) == 3_000  # the excerpt's first 3,000 rows; counted with plain csv on the file
    report = validate_frame(frame, "1m", now_ms=NOW)
    assert report["errors"] == 0
    assert report["gap_events"] == 203 and report["missing_bars"] == 316
    assert report["zero_volume"] == 0
    sizes = Counter(g["missing"] for g in report["gaps"]["list"])
    assert sizes == {1: 140, 2: 37, 3: 14, 4: 5, 5: 3, 6: 3, 7: 1}


def _statuses(frame: pd.DataFrame, interval: str = "1h") -> dict[str, tuple[str, int, str]]:
    report = validate_frame(frame, interval, now_ms=NOW)
    return {c["check"]: (c["status"], c["count"], c["detail"]) for c in report["checks"]}


def test_clean_bootstrap_frame_passes_every_check() -> None:
    report = validate_frame(generate_candles(500, "1h", seed=2), "1h", now_ms=NOW)
    assert report["status"] == "ok" and report["errors"] == 0 and report["warnings"] == 0


@pytest.mark.parametrize(
    ("breakage", "check", "count", "detail"),
    [
        ("swap", "open_time order", 1, "row 11"),
        ("duplicate", "duplicates", 1, "open_time repeated"),
        ("off_grid", "off-grid timestamps", 1, "not on the 1h grid"),
        ("close_time", "close_time", 1, "expected"),
        ("ohlc", "OHLC consistency", 1, "row 6"),
        ("nan", "NaN values", 1, "close is not a finite number"),
        ("negative", "negative values", 1, "volume = -1.0"),
        ("open", "still-open last candle", 1, "after now"),
    ],
)
def test_each_structural_problem_is_an_error_naming_the_row(breakage: str, check: str, count: int,
                                                            detail: str) -> None:
    frame = generate_candles(40, "1h", seed=5)
    if breakage == "swap":
        frame.iloc[[9, 10]] = frame.iloc[[10, 9]].to_numpy()
    elif breakage == "duplicate":
        frame.loc[20, "open_time"] = frame.loc[19, "open_time"]
        frame.loc[20, "close_time"] = frame.loc[19, "close_time"]
    elif breakage == "off_grid":
        frame.loc[30, "open_time"] += 60_000
        frame.loc[30, "close_time"] += 60_000
    elif breakage == "close_time":
        frame.loc[3, "close_time"] += 1
    elif breakage == "ohlc":
        frame.loc[5, "low"] = frame.loc[5, "high"] + 1.0
    elif breakage == "nan":
        frame.loc[7, "close"] = np.nan
    elif breakage == "negative":
        frame.loc[8, "volume"] = -1.0
    now = NOW if breakage != "open" else int(frame["close_time"].iloc[-1])
    report = validate_frame(frame, "1h", now_ms=now)
    found = {c["check"]: c for c in report["checks"]}
    assert found[check]["status"] == "error" and found[check]["count"] == count
    assert detail in found[check]["detail"]
    assert report["status"] == "errors" and report["errors"] >= 1


def test_gaps_and_zero_volume_are_only_warnings() -> None:
    frame = generate_candles(100, "1h", seed=5).drop(index=[10, 11, 50]).reset_index(drop=True)
    frame.loc[3, "volume"] = 0.0
    checks = _statuses(frame)
    assert checks["gaps"][:2] == ("warning", 2)
    assert "3 missing bars; largest 2" in checks["gaps"][2]
    assert checks["zero volume"][:2] == ("warning", 1)
    assert validate_frame(frame, "1h", now_ms=NOW)["errors"] == 0


def test_month_and_week_grids() -> None:
    assert validate_frame(generate_candles(30, "1M", seed=1), "1M", now_ms=NOW)["errors"] == 0
    weekly = generate_candles(30, "1w", seed=1)
    assert pd.to_datetime(weekly["open_time"], unit="ms").dt.day_of_week.eq(0).all()  # Mondays
    assert validate_frame(weekly, "1w", now_ms=NOW)["errors"] == 0
    shifted = weekly.copy()
    shifted["open_time"] += 86_400_000
    shifted["close_time"] += 86_400_000
    assert _statuses(shifted, "1w")["off-grid timestamps"][:2] == ("error", 30)
