"""`coin trade` in paper mode (the default) end to end: the real command against the loopback fake
Binance (tests/fakes/binance, a separate process) streaming real 5m BTCUSDT candles re-timed as 1s
klines. Paper over the live stream must be the same computation as `coin trade --mode replay` over
the candles it appended to the store: same fills, same final equity."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, last_line, run_coin
from tests.fakes.binance import FakeBinanceProcess

CSV = Path(__file__).resolve().parents[1] / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 240   # closed 1s bars before now: more than the features' warm-up (168 + lookback 16)
# Risk off where paper and replay are compared; the stale guard wide (the one place they may differ).
SAME = {"COIN_RISK__MAX_DRAWDOWN": "1", "COIN_RISK__REDUCE_DRAWDOWN": "1",
        "COIN_RISK__MAX_DAILY_TURNOVER": "1000000", "COIN_RISK__STALE_INTERVALS": "100000"}


@pytest.fixture
def fake():
    with FakeBinanceProcess("--candles", f"BTCUSDT:1s:{HISTORY}:{CSV}") as proc:
        yield proc


def _env(fake: FakeBinanceProcess, **more: str) -> dict[str, str]:
    return {"COIN_BINANCE__API_URL": fake.api_url,
            "COIN_BINANCE__STREAM_URL": fake.base_url.replace("http", "ws") + "/",
            "COIN_BINANCE__MAX_RETRIES": "3", **SAME, **more}


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _paper(cwd: Path, fake: FakeBinanceProcess, *args: str, **env: str) -> dict[str, Any]:
    return _json(run_coin(["trade", "--symbol", "BTCUSDT", "--interval", "1s", *args, "--json"], cwd=cwd,
                          env=_env(fake, **env), timeout=180))


# The fake's exchangeInfo for BTCUSDT (payloads/rest_exchangeInfo_symbol.json): paper trades with
# these; a replay takes env.*, so the replay of a paper run is given the same numbers.
EXCHANGE_FILTERS = {"COIN_ENV__LOT_STEP": "0.001", "COIN_ENV__MIN_QTY": "0.001", "COIN_ENV__TICK_SIZE": "0.000001",
                    "COIN_ENV__MIN_NOTIONAL": "0"}   # NOTIONAL applyMinToMarket false: no minimum for MARKET


def _replay(cwd: Path, first_bar: str, last_bar: str) -> dict[str, Any]:
    to = str(_ms(last_bar) + 1000)
    return _json(run_coin(["trade", "--mode", "replay", "--symbol", "BTCUSDT", "--interval", "1s", "--from",
                           str(_ms(first_bar)), "--to", to, "--json"], cwd=cwd, env={**SAME, **EXCHANGE_FILTERS},
                          timeout=180))


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _fills(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM fills ORDER BY seq").fetchall()
    finally:
        conn.close()


def _bars(metrics: Path) -> list[int]:
    return [row["bar"] for row in map(json.loads, metrics.read_text().splitlines()) if "bar" in row]


def _run_dir(cwd: Path, run_id: str) -> Path:
    return next((cwd / "runs").glob(f"**/{run_id}"))


def _assert_same(paper: dict[str, Any], replay: dict[str, Any], paper_ledger: Path, replay_ledger: Path) -> None:
    assert replay["first_bar"] == paper["first_bar"] and replay["last_bar"] == paper["last_bar"]
    assert replay["bars"] == paper["bars"]
    assert replay["trades"] == paper["trades"] and paper["trades"] > 0
    assert abs(replay["final_equity"] / paper["final_equity"] - 1.0) < 1e-9
    assert _fills(replay_ledger) == _fills(paper_ledger)


def test_paper_20_bars_then_replay_of_the_same_candles(tmp_path: Path, fake: FakeBinanceProcess) -> None:
    result = run_coin(["trade", "--symbol", "BTCUSDT", "--interval", "1s", "--max-bars", "20"], cwd=tmp_path,
                      env=_env(fake), timeout=180)
    assert result.returncode == 0, result.stderr
    assert "final_equity" in result.stdout
    run_id = last_line(result.stdout)
    summary = json.loads(_run_dir(tmp_path, run_id).joinpath("summary.json").read_text())
    assert summary["mode"] == "paper" and summary["bars"] == 20
    replay = _replay(tmp_path, summary["first_bar"], summary["last_bar"])
    _assert_same(summary, replay, tmp_path / summary["state_file"], tmp_path / replay["state_file"])
    # the replay warmed on the stored bars before --from: its first bar already decides
    first = json.loads((_run_dir(tmp_path, replay["run_id"]) / "metrics.jsonl").read_text().splitlines()[0])
    assert first["bar"] == _ms(summary["first_bar"]) and first["reason"] != "warm-up" and first["target"] is not None
    # sized on the exchange's MARKET_LOT_SIZE step (0.001), not env.lot_step's default 0.00001
    qtys = [row[2] for row in _fills(tmp_path / summary["state_file"])]
    assert qtys and all(abs(q * 1000 - round(q * 1000)) < 1e-6 for q in qtys)
    assert (tmp_path / "data" / "binance" / "BTCUSDT" / "exchange_info.json").is_file()   # the filters, cached


def _ledger_bars(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)
        try:
            row = conn.execute("SELECT bars FROM account").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return row[0] if row and row[0] else 0


def _start(cwd: Path, fake: FakeBinanceProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "coin_cli", "trade", "--symbol", "BTCUSDT", "--interval", "1s",
                             *args, "--json"], cwd=cwd, env=clean_env(_env(fake)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_bars(cwd: Path, n: int, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while _ledger_bars(_paper_ledger(cwd)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{n} bars not reached"
        time.sleep(0.1)


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


def _in_order_once(summary: dict[str, Any], cwd: Path) -> list[int]:
    bars = _bars(_run_dir(cwd, summary["run_id"]) / "metrics.jsonl") if "run_id" in summary else []
    assert bars == sorted(set(bars)), "a bar processed twice or out of order"
    assert all(b - a == 1000 for a, b in itertools.pairwise(bars)), "a bar missed"
    return bars


def _paper_ledger(cwd: Path) -> Path:
    found = sorted((cwd / "runs" / "state").glob("*paper*.sqlite")) if (cwd / "runs" / "state").is_dir() else []
    return found[0] if found else cwd / "runs" / "state" / "none.sqlite"


@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_socket_drop_or_stall_mid_run_every_bar_once_gap_filled(tmp_path: Path, fake: FakeBinanceProcess,
                                                                 fault: str) -> None:
    proc = _start(tmp_path, fake, "--max-bars", "30")
    _wait_bars(tmp_path, 8, proc)
    before = fake.control("streams")
    if fault == "drop":  # the socket aborted and the market unreachable for 3 s: ~3 bars close meanwhile
        fake.control("drop", mode="abort")
        fake.control("refuse", seconds=3)
    else:  # silence: the watchdog (2 intervals) replaces the socket
        fake.control("stall", seconds=6)
    summary = _finish(proc)
    assert summary["bars"] == 30
    assert summary["gaps"] >= 1 and summary["gap_bars_filled"] >= 2, summary
    assert fake.control("streams")["result"]["connects"] > before["result"]["connects"]
    bars = _in_order_once(summary, tmp_path)
    assert len(bars) == 30
    replay = _replay(tmp_path, summary["first_bar"], summary["last_bar"])
    _assert_same(summary, replay, tmp_path / summary["state_file"], tmp_path / replay["state_file"])


def test_duplicate_and_reordered_klines_dropped_and_counted(tmp_path: Path, fake: FakeBinanceProcess) -> None:
    proc = _start(tmp_path, fake, "--max-bars", "20")
    _wait_bars(tmp_path, 4, proc)
    fake.control("duplicate", n=1)
    _wait_bars(tmp_path, 8, proc)
    fake.control("reorder", n=1)
    summary = _finish(proc)
    assert summary["duplicates_dropped"] >= 2, summary   # the repeat, and the late one of the swapped pair
    assert len(_in_order_once(summary, tmp_path)) == 20


def test_kill_9_then_restart_ends_as_an_uninterrupted_run(tmp_path: Path, fake: FakeBinanceProcess) -> None:
    proc = _start(tmp_path, fake)
    _wait_bars(tmp_path, 10, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(3)   # bars close while it is down: the restart fetches and processes them first
    resumed = _finish(_start(tmp_path, fake, "--max-bars", "12"))
    assert resumed["resumed_from"] is not None and resumed["bars"] == 12
    assert resumed["bars_total"] >= 22
    replay = _replay(tmp_path, resumed["first_bar"], resumed["last_bar"])
    assert replay["bars"] == resumed["bars_total"]
    assert replay["trades"] == resumed["trades"]
    assert abs(replay["final_equity"] / resumed["final_equity"] - 1.0) < 1e-9
    assert _fills(tmp_path / replay["state_file"]) == _fills(tmp_path / resumed["state_file"])


def test_market_unreachable_at_start_exit_4_ledger_untouched(tmp_path: Path) -> None:
    result = run_coin(["trade", "--symbol", "BTCUSDT", "--interval", "1s", "--max-bars", "5"], cwd=tmp_path,
                      env={"COIN_BINANCE__API_URL": "http://127.0.0.1:9/api", "COIN_BINANCE__MAX_RETRIES": "1"})
    assert result.returncode == 4, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "http://127.0.0.1:9/api" in errors[0], result.stderr
    assert not list(tmp_path.glob("runs/state/*.sqlite"))
