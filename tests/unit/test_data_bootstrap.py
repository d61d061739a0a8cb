"""Bootstrap candles: deterministic bytes, valid OHLC on every interval, stylised facts, service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coin_cli.config import Settings
from coin_cli.data.bootstrap import generate_candles
from coin_cli.data.schema import CANDLE_COLUMNS, INTERVALS, interval_ms
from coin_cli.data.service import load_or_bootstrap
from coin_cli.data.store import CandleStore


def _settings(tmp_path: Path, **data: object) -> Settings:
    return Settings.model_validate({
        "paths": {"runs_dir": str(tmp_path / "runs"), "data_dir": str(tmp_path / "data")},
        "data": {"bootstrap_rows": 3000, **data},
    })


@pytest.mark.parametrize("interval", INTERVALS)
def test_every_interval_gives_a_consistent_grid_and_ohlc(interval: str) -> None:
    frame = generate_candles(400, interval, seed=3)
    assert list(frame.columns) == CANDLE_COLUMNS and len(frame) == 400
    times = frame["open_time"].to_numpy()
    assert (np.diff(times) > 0).all()
    if interval != "1M":
        assert (np.diff(times) == interval_ms(interval)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert (frame["close_time"].to_numpy()[:-1] == times[1:] - 1).all()


def test_default_start_is_fixed_and_never_in_the_future() -> None:
    assert generate_candles(10, "1h", seed=1)["open_time"].iloc[0] == 1_577_836_800_000  # 2020-01-01
    long_daily = generate_candles(20_000, "1d", seed=1)
    assert long_daily["close_time"].iloc[-1] < 1_704_067_200_000  # ends before 2024-01-01
    assert generate_candles(20_000, "4h", seed=1)["close_time"].iloc[-1] < 1_704_067_200_000
    assert generate_candles(2_000, "1M", seed=1)["close_time"].iloc[-1] < 1_704_067_200_000


def test_stylised_facts_fat_tails_clustering_volume() -> None:
    frame = generate_candles(20_000, "1h", seed=7)
    r = np.diff(np.log(frame["close"].to_numpy()))
    kurtosis = ((r - r.mean()) ** 4).mean() / r.var() ** 2
    assert kurtosis > 4.0  # a normal distribution has 3
    a = np.abs(r)
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.1  # volatility clustering
    assert np.corrcoef(frame["volume"].to_numpy()[1:], a)[0, 1] > 0.3
    assert (frame["open"].to_numpy()[1:] == frame["close"].to_numpy()[:-1]).all()


def test_same_seed_same_bytes_different_seed_different_file(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        store = CandleStore(tmp_path / name, "binance")
        store.replace("BTCUSDT", "1h", generate_candles(2000, "1h", seed), "bootstrap")
        paths.append(store.path("BTCUSDT", "1h"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_load_or_bootstrap_generates_once_then_reads(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    frame, manifest, generated = load_or_bootstrap(settings)
    assert generated is True and len(frame) == 3000
    assert manifest["source"] == "bootstrap" and manifest["rows"] == 3000
    assert manifest["sources"][0]["detail"]["seed"] == 7
    again, manifest2, generated2 = load_or_bootstrap(settings)
    assert generated2 is False
    assert again.equals(frame)
    assert manifest2["sha256"] == manifest["sha256"]
