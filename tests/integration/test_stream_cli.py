"""`coin stream market` end to end: the real `coin` in a subprocess against the loopback fake
(1s klines re-timed from a real candle file, streamed in real time): ten closed klines in order with
the file's values, a socket drop and a stalled socket (every bar once, in order, the missed ones
filled over REST and marked), and a market unreachable at start (exit 4, one line)."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.fakes.binance import FakeBinance, add_candles

CANDLES = Path(__file__).resolve().parents[1] / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 50
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance()
    with server.run_in_thread():
        yield server


def _env(fake: FakeBinance, **more: str) -> dict[str, str]:
    return {"COIN_BINANCE__API_URL": fake.api_url, "COIN_BINANCE__STREAM_URL": fake.stream_url,
            "COIN_BINANCE__RECONNECT_BASE": "0.05", "COIN_BINANCE__RECONNECT_CAP": "0.2", **more}


def _file_rows() -> list[tuple[float, ...]]:
    with CANDLES.open(newline="") as handle:
        return [tuple(float(x) for x in row[1:6]) for row in list(csv.reader(handle))[1:]]


def _start(workdir: Path, fake: FakeBinance, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "coin_cli", "stream", "market", "--symbol", "BTCUSDT",
                             "--interval", "1s", "--json", *args], cwd=workdir, env=clean_env(_env(fake, **env)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read(proc: subprocess.Popen[str], on_event=None) -> tuple[list[dict], dict, str]:
    """Events until the summary (the object with run_id); `on_event(event, events)` after each."""
    assert proc.stdout is not None
    events: list[dict] = []
    for line in proc.stdout:
        obj = json.loads(line)
        if "run_id" in obj:
            _, err = proc.communicate(timeout=30)
            return events, obj, err
        events.append(obj)
        if on_event is not None:
            on_event(obj, events)
    _, err = proc.communicate(timeout=30)
    raise AssertionError(f"no summary; exit {proc.returncode}: {err}")


def _klines(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "kline"]


def _assert_every_bar_once_with_the_files_values(klines: list[dict], start_ms: int) -> None:
    rows = _file_rows()
    times = [k["open_time"] for k in klines]
    assert [b - a for a, b in itertools.pairwise(times)] == [1000] * (len(times) - 1), times
    for k in klines:
        assert (k["open"], k["high"], k["low"], k["close"], k["volume"]) == rows[(k["open_time"] - start_ms) // 1000]
        assert k["close_time"] == k["open_time"] + 999


def test_ten_closed_klines_in_order_then_the_summary(workdir: Path, fake: FakeBinance) -> None:
    series = add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
    events, summary, err = _read(_start(workdir, fake, "--max-events", "10"))
    klines = _klines(events)
    assert len(klines) == 10 == len(events) and not any(k["gap_filled"] for k in klines), err
    _assert_every_bar_once_with_the_files_values(klines, series.start_ms)
    assert (klines[0]["open_time"] - series.start_ms) // 1000 >= HISTORY    # live bars, not history
    assert summary["klines"] == 10 and summary["stopped"] == "max_events" and summary["reconnects"] == 0
    run = workdir / "runs" / summary["run_id"]
    recorded = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert recorded == events
    assert json.loads((run / "meta.json").read_text())["exit_code"] == 0


@pytest.mark.parametrize("fault", ["drop", "stale"])
def test_a_dropped_or_stalled_socket_loses_no_bar(workdir: Path, fake: FakeBinance, fault: str) -> None:
    series = add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
    acted = []

    def on_event(event: dict, events: list[dict]) -> None:
        if not acted and len(_klines(events)) == 3:
            acted.append(True)
            fake.streams.stall()         # bars close on the fake while this socket says nothing
            if fault == "drop":
                import time

                time.sleep(1.3)  # under the 2 s watchdog (two 1s intervals): the drop ends it
                fake.streams.drop("abort")

    proc = _start(workdir, fake, "--max-events", "12", **({"COIN_BINANCE__STALE_AFTER": "2.0"}
                                                        if fault == "stale" else {}))
    events, summary, err = _read(proc, on_event)
    klines = _klines(events)
    assert len(klines) == 12, err
    _assert_every_bar_once_with_the_files_values(klines, series.start_ms)
    filled = [k for k in klines if k["gap_filled"]]
    assert filled and all(k["open_time"] > klines[2]["open_time"] for k in filled)
    kinds = [e["event"] for e in events]
    down, up = kinds.index("stream_down"), kinds.index("stream_up")
    assert down < up and kinds[up + 1:up + 1 + len(filled)] == ["kline"] * len(filled)
    assert summary["gap_filled"] == len(filled) and summary["reconnects"] >= 1
    if fault == "stale":
        assert events[down]["detail"] == "stale: no message for 2 s"
        assert summary["reconnect_reasons"] == {"stale": 1}
    else:
        assert events[down]["detail"].startswith("error: ")


def test_market_unreachable_at_start_is_one_line_and_exit_4(workdir: Path, fake: FakeBinance) -> None:
    fake.refuse_connections()
    result = subprocess.run([sys.executable, "-m", "coin_cli", "stream", "market", "--symbol", "BTCUSDT",
                             "--interval", "1s", "--max-events", "3"], cwd=workdir, capture_output=True,
                            text=True, timeout=60, env=clean_env(_env(fake, COIN_BINANCE__MAX_RETRIES="1")))
    assert result.returncode == 4, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # (+ retry warnings)
    assert len(errors) == 1 and errors[0].startswith(f"error: {fake.api_url}: connect failed after 1 retries ("), errors
    assert "Traceback" not in result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    meta = json.loads((workdir / "runs" / run_id / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("failed", 4)


@pytest.mark.parametrize("fault", ["duplicate", "reorder"])
def test_duplicate_and_reordered_klines_are_shown_once_in_order(workdir: Path, fake: FakeBinance,
                                                                 fault: str) -> None:
    series = add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)

    def on_event(event: dict, events: list[dict]) -> None:
        if len(_klines(events)) == 2 and len(events) == 2:
            getattr(fake.streams, f"{fault}_next")(1)

    events, summary, err = _read(_start(workdir, fake, "--max-events", "8"), on_event)
    klines = _klines(events)
    assert len(klines) == 8, err
    _assert_every_bar_once_with_the_files_values(klines, series.start_ms)
    # a duplicate is dropped; a reordered pair: the later bar arrives first, the one before it is
    # fetched over REST (gap_filled) and its late stream copy dropped
    assert summary["duplicates_dropped"] == 1
    assert summary["gap_filled"] == (1 if fault == "reorder" else 0)


@pytest.mark.parametrize(("sig", "code", "said"), [("SIGINT", 130, "SIGINT"), ("SIGTERM", 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_ends_with_the_summary_and_its_exit_code(workdir: Path, fake: FakeBinance, sig: str,
                                                                   code: int, said: str) -> None:
    import signal

    add_candles(fake, "BTCUSDT", "1s", CANDLES, history=HISTORY)
    proc = _start(workdir, fake)   # no --max-events, no --duration: runs until stopped

    def on_event(event: dict, events: list[dict]) -> None:
        if len(_klines(events)) == 3 and len(events) == 3:
            proc.send_signal(getattr(signal, sig))

    events, summary, err = _read(proc, on_event)
    assert proc.returncode == code, err
    assert summary["stopped"] == said and summary["klines"] == len(_klines(events)) >= 3
    run = workdir / "runs" / summary["run_id"]
    assert len((run / "events.jsonl").read_text().splitlines()) == len(events)
    meta = json.loads((run / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("interrupted", code)
