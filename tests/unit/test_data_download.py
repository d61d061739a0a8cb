"""Download through python-binance against the loopback fake: paging, gaps, the still-open candle,
resume, 429/418 Retry-After, 5xx/HTML/slow retries, weight pacing, and what survives a failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import binance  # noqa: F401  (imported once up front: the first import is slow)
import numpy as np
import pytest

from coin_cli.config import Settings
from coin_cli.data.download import klines_to_frame, plan_segments
from coin_cli.data.service import dataset_lock, download_dataset, store_for
from coin_cli.errors import ExchangeError, LockHeldError, UsageError
from tests.fakes.binance import FakeBinance, KlineSeries, add_series

MINUTE = 60_000
BARS = 1500


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance()
    with server.run_in_thread():
        yield server


def _clock(fake: FakeBinance, seconds_into_minute: float = 20.0) -> int:
    """Pin the fake's clock to a known point of a minute; returns that minute's open time."""
    minute = (int(time.time() * 1000) // MINUTE + 1) * MINUTE
    fake.set_clock(now_ms=minute + int(seconds_into_minute * 1000))
    return minute


def _settings(tmp_path: Path, fake: FakeBinance, **client: object) -> Settings:
    return Settings.model_validate({
        "paths": {"runs_dir": str(tmp_path / "runs"), "data_dir": str(tmp_path / "data")},
        "data": {"interval": "1m", "download_page_limit": 200},
        "binance": {"api_url": fake.api_url, "timeout": 2.0, "max_retries": 3, **client},
    })


def _series(fake: FakeBinance, now_minute: int, gap: bool = True) -> KlineSeries:
    start = now_minute - BARS * MINUTE
    gaps = [(start + 400 * MINUTE, start + 409 * MINUTE)] if gap else []
    return add_series(fake, "BTCUSDT", "1m", start, gaps=gaps)


def test_download_pages_skips_gaps_drops_the_open_candle_and_stores_exact_values(
        tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute)
    summary = download_dataset(_settings(tmp_path, fake), str(series.start_ms), None)
    # bars start..minute inclusive = BARS + 1; minus 10 in the gap; minus the still-open one
    assert summary["rows"] == BARS + 1 - 10 - 1
    assert summary["still_open_dropped"] == 1
    assert summary["gap_events"] == 1 and summary["missing_bars"] == 10
    assert summary["source"] == "binance-rest" and summary["retries"] == 0
    stored = store_for(_settings(tmp_path, fake)).read("BTCUSDT", "1m")
    times = stored["open_time"].to_numpy()
    assert times[-1] == minute - MINUTE
    expected = series.values(times)
    for col in ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_base"):
        assert np.array_equal(stored[col].to_numpy(), expected[col]), col
    assert (stored["close_time"].to_numpy() == times + MINUTE - 1).all()
    klines = fake.requests_to("/api/v3/klines")
    assert [int(r["params"]["limit"]) for r in klines] == [200] * len(klines)
    assert fake.requests_to("/api/v3/ping") and fake.requests_to("/api/v3/time")


def test_resume_starts_after_the_last_stored_bar(tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute)
    settings = _settings(tmp_path, fake)
    first = download_dataset(settings, str(series.start_ms), str(series.start_ms + 700 * MINUTE))
    assert first["rows"] == 700 - 10 and first["last"] is not None
    fake.reset()
    second = download_dataset(settings, None, None)
    last_stored = series.start_ms + 699 * MINUTE
    assert int(fake.requests_to("/api/v3/klines")[0]["params"]["startTime"]) == last_stored + 1
    assert second["resumed_after"] is not None and second["rows"] == BARS - 10
    times = store_for(settings).read("BTCUSDT", "1m")["open_time"].to_numpy()
    assert (np.diff(times) > 0).all()
    again = download_dataset(settings, str(series.start_ms), None)  # nothing new: no rows, no write
    assert again["rows_added"] == 0 and again["store_writes"] == 0


def test_429_and_418_wait_retry_after_then_continue(tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute, gap=False)
    fake.fail_next(path="/api/v3/klines", status=429, retry_after=1, after=2)
    fake.fail_next(path="/api/v3/klines", status=418, retry_after=1, after=2)
    summary = download_dataset(_settings(tmp_path, fake), str(series.start_ms), None)
    assert summary["rows"] == BARS and summary["retries"] == 2
    assert summary["waited_s"] >= 2.0
    log = fake.requests_to("/api/v3/klines")
    statuses = [r["status"] for r in log]
    assert statuses[2:5] == [429, 418, 200]
    assert log[2]["params"]["startTime"] == log[3]["params"]["startTime"] == log[4]["params"]["startTime"]


def test_5xx_html_and_slow_answers_are_retried(tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute, gap=False)
    fake.fail_next(path="/api/v3/klines", status=502, html=True, after=1)
    fake.fail_next(path="/api/v3/klines", status=503, after=1)
    fake.fail_next(path="/api/v3/klines", kind="slow", delay=1.5, after=3)
    fake.fail_next(path="/api/v3/time", status=500)
    summary = download_dataset(_settings(tmp_path, fake, timeout=0.5), str(series.start_ms), None)
    assert summary["rows"] == BARS and summary["retries"] == 4


def test_giving_up_is_an_exchange_error_and_keeps_the_pages_already_fetched(
        tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute, gap=False)
    fake.fail_next(path="/api/v3/klines", status=500, times=10, after=3)
    settings = _settings(tmp_path, fake, max_retries=2)
    with pytest.raises(ExchangeError, match=r"klines failed after 2 retries \(HTTP 500\)"):
        download_dataset(settings, str(series.start_ms), None)
    assert len(store_for(settings).read("BTCUSDT", "1m")) == 3 * 200


def test_long_ban_fails_at_once(tmp_path: Path, fake: FakeBinance) -> None:
    minute = _clock(fake)
    series = _series(fake, minute, gap=False)
    fake.fail_next(path="/api/v3/klines", status=418, retry_after=3600)
    with pytest.raises(ExchangeError, match="wait 3600 s"):
        download_dataset(_settings(tmp_path, fake), str(series.start_ms), None)
    assert not store_for(_settings(tmp_path, fake)).exists("BTCUSDT", "1m")


def test_paces_by_used_weight_header_instead_of_hitting_429(tmp_path: Path, fake: FakeBinance) -> None:
    fake.weight_limit = 5000
    minute = _clock(fake, seconds_into_minute=58.0)
    series = _series(fake, minute, gap=False)
    fake.preload_weight(4995)  # other clients on this IP: ping, time and one page fit, then the minute is full
    settings = _settings(tmp_path, fake).model_copy(deep=True)
    settings.data.max_weight_per_minute = 5000
    summary = download_dataset(settings, str(series.start_ms), None)
    # the wait crossed into the next minute, so the bar that was open at the start is now final
    assert summary["rows"] == BARS + 1 and summary["rate_limit_waits"] == 1 and summary["retries"] == 0
    log = fake.requests_to("/api/v3/klines")
    assert all(r["status"] == 200 for r in fake.requests)
    assert log[0]["server_time_ms"] // MINUTE == minute // MINUTE
    assert log[1]["server_time_ms"] // MINUTE == minute // MINUTE + 1


def test_unknown_symbol_is_a_usage_error(tmp_path: Path, fake: FakeBinance) -> None:
    _series(fake, _clock(fake))
    settings = _settings(tmp_path, fake).model_copy(deep=True)
    settings.data.symbol = "NOPEUSDT"
    with pytest.raises(UsageError, match=r"Invalid symbol\. \(code -1121\)"):
        download_dataset(settings, "2024-01-01", None)


def test_download_takes_the_dataset_lock(tmp_path: Path, fake: FakeBinance) -> None:
    settings = _settings(tmp_path, fake)
    with dataset_lock(settings, "data download"), pytest.raises(LockHeldError, match="data download"):
        download_dataset(settings, "2024-01-01", None)
    assert fake.requests == []


def test_plan_segments() -> None:
    h = 3_600_000
    assert plan_segments(0, 10 * h, "1h", None) == [(0, 10 * h - 1)]
    assert plan_segments(0, 10 * h, "1h", (3 * h, 5 * h)) == [(0, 3 * h - 1), (5 * h + 1, 10 * h - 1)]
    assert plan_segments(None, 10 * h, "1h", (3 * h, 5 * h)) == [(5 * h + 1, 10 * h - 1)]
    assert plan_segments(6 * h, 10 * h, "1h", (3 * h, 5 * h)) == [(6 * h, 10 * h - 1)]
    assert plan_segments(None, 5 * h, "1h", (3 * h, 5 * h)) == []
    with pytest.raises(UsageError, match="--start is required"):
        plan_segments(None, 10 * h, "1h", None)


def test_malformed_rows_are_an_exchange_error() -> None:
    with pytest.raises(ExchangeError, match="malformed kline rows"):
        klines_to_frame([[1, "1", "2"]], 0)
    with pytest.raises(ExchangeError, match="could not convert"):
        klines_to_frame([[1, "x", "2", "1", "1", "1", 2, "1", 3, "1", "1", "0"]], 0)


def test_ctrl_c_keeps_the_pages_and_says_how_many_candles(tmp_path: Path, fake: FakeBinance) -> None:
    import os
    import signal
    import threading

    from coin_cli.errors import Terminated

    minute = _clock(fake)
    series = _series(fake, minute, gap=False)
    fake.fail_next(path="/api/v3/klines", kind="slow", delay=5, after=3)

    def interrupt_when_hung() -> None:
        deadline = time.monotonic() + 30
        while len(fake.requests_to("/api/v3/klines")) <= 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)   # asyncio.run cancels the download, then raises

    threading.Thread(target=interrupt_when_hung, daemon=True).start()
    settings = _settings(tmp_path, fake)
    with pytest.raises(KeyboardInterrupt) as caught:
        download_dataset(settings, str(series.start_ms), None)
    assert not isinstance(caught.value, Terminated)
    assert str(caught.value) == "600 candles kept, run again to resume"
    assert len(store_for(settings).read("BTCUSDT", "1m")) == 3 * 200
