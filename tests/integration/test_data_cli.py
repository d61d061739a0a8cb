"""`coin data ...` end to end: the real command in a subprocess, real files, the loopback fake Binance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from coin_cli.data.store import CandleStore
from coin_cli.runs import file_lock
from tests.conftest import TEST_DATA, clean_env, last_line
from tests.fakes.binance import FakeBinance, KlineSeries, add_series

MINUTE = 60_000


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance()
    with server.run_in_thread():
        yield server


def _series(fake: FakeBinance, bars: int = 3000) -> KlineSeries:
    now = int(time.time() * 1000)
    return add_series(fake, "BTCUSDT", "1m", now - now % MINUTE - bars * MINUTE)


def _env(fake: FakeBinance, **more: str) -> dict[str, str]:
    return {"COIN_BINANCE__API_URL": fake.api_url, "COIN_DATA__DOWNLOAD_PAGE_LIMIT": "200", **more}


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def _store(workdir: Path) -> CandleStore:
    return CandleStore(workdir / "data", "binance")


def test_bootstrap_same_seed_same_bytes_and_marked_synthetic(coin, workdir: Path) -> None:
    first = coin("--data-dir", "a", "data", "bootstrap", "--rows", "3000", "--seed", "11", "--json")
    second = coin("--data-dir", "b", "data", "bootstrap", "--rows", "3000", "--seed", "11")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    summary = _json(first)
    assert summary["source"] == "bootstrap" and summary["rows"] == 3000 and summary["interval"] == "1h"
    run_dir = workdir / "runs" / summary["run_id"]
    assert json.loads((run_dir / "data_manifest.json").read_text())["source"] == "bootstrap"
    assert last_line(second.stdout).split("-")[1] == "data"  # human output: run_id is the last line
    a = workdir / "a" / "binance" / "BTCUSDT" / "1h.parquet"
    b = workdir / "b" / "binance" / "BTCUSDT" / "1h.parquet"
    assert a.read_bytes() == b.read_bytes()


def test_import_validate_ls_on_a_real_file(coin, workdir: Path) -> None:
    imported = coin("data", "import", str(TEST_DATA / "binance_ETHUSDT_5m.csv"), "--symbol", "ethusdt",
                    "--interval", "5m", "--json")
    assert imported.returncode == 0, imported.stderr
    assert _json(imported)["rows"] == 7_142  # the excerpt (tests/data/README.md)
    validated = coin("data", "validate", "--symbol", "ETHUSDT", "--interval", "5m", "--json")
    assert validated.returncode == 0, validated.stderr
    report = _json(validated)
    assert (report["status"], report["gap_events"], report["missing_bars"], report["zero_volume"]) == \
        ("warnings", 2, 58, 10)
    human = coin("data", "validate", "--symbol", "ETHUSDT", "--interval", "5m")
    assert "OHLC consistency" in human.stdout and "58 missing bars" in human.stdout
    manifest = json.loads(_store(workdir).manifest_path("ETHUSDT", "5m").read_text())
    assert manifest["last_validated"]["status"] == "warnings"
    listed = coin("data", "ls", "--json")
    datasets = _json(listed)["datasets"]
    assert [(d["symbol"], d["interval"], d["rows"], d["source"]) for d in datasets] == \
        [("ETHUSDT", "5m", 7_142, "csv")]


def test_bad_import_exits_3_with_one_line_and_leaves_the_store(coin, workdir: Path) -> None:
    assert coin("data", "import", str(TEST_DATA / "binance_BTCUSDT_5m.csv"), "--interval", "5m").returncode == 0
    before = _store(workdir).path("BTCUSDT", "5m").read_bytes()
    bad = workdir / "bad.csv"
    bad.write_text("open_time_ms,open,high,low,close,volume\n1606780800000,1,2,0.5,1.5,3\n1606781100000,x,2,1,1,1\n")
    result = coin("data", "import", str(bad), "--interval", "5m")
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [f"error: {bad}: line 3: column open: 'x' is not a number"]
    assert _store(workdir).path("BTCUSDT", "5m").read_bytes() == before
    meta = json.loads((workdir / "runs" / last_line(result.stdout) / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("failed", 3)


def test_validate_exits_3_on_structural_errors(coin, workdir: Path) -> None:
    frame = pd.read_csv(TEST_DATA / "bittrex_ETCBTC_1m.csv").rename(columns={"open_time_ms": "open_time"})
    frame.loc[100, "high"] = frame.loc[100, "low"] / 2  # written straight through the store API, unchecked
    _store(workdir).merge("ETCBTC", "1m", frame, "csv")
    result = coin("data", "validate", "--symbol", "ETCBTC", "--interval", "1m")
    assert result.returncode == 3
    assert "OHLC consistency" in result.stdout and "row 101" in result.stdout
    assert "1 check(s) failed" in result.stderr
    meta = json.loads((workdir / "runs" / last_line(result.stdout) / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("failed", 3)


def test_download_and_the_lock(coin, workdir: Path, fake: FakeBinance) -> None:
    series = _series(fake)
    with file_lock(workdir / "runs", "data-binance-BTCUSDT-1m", "test"):
        held = coin("data", "download", "--interval", "1m", "--start", str(series.start_ms), env=_env(fake))
    assert held.returncode == 5 and "lock" in held.stderr
    assert fake.requests == []
    result = coin("data", "download", "--interval", "1m", "--start", str(series.start_ms), "--json", env=_env(fake))
    assert result.returncode == 0, result.stderr
    summary = _json(result)
    assert summary["rows"] >= 3000 and summary["still_open_dropped"] == 1 and summary["pages"] == 16


def test_download_gives_up_with_exit_4(coin, workdir: Path, fake: FakeBinance) -> None:
    series = _series(fake)
    fake.fail_next(path="/api/v3/klines", status=503, times=50)
    result = coin("data", "download", "--interval", "1m", "--start", str(series.start_ms),
                  env=_env(fake, COIN_BINANCE__MAX_RETRIES="1"))
    assert result.returncode == 4
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {fake.api_url}: klines failed after 1 retries (HTTP 503)"]


def _start_download(workdir: Path, fake: FakeBinance, start_ms: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "coin_cli", "data", "download", "--interval", "1m", "--start", str(start_ms)],
        cwd=workdir, env=clean_env(_env(fake)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_hang(fake: FakeBinance, pages: int) -> None:
    deadline = time.monotonic() + 60
    while len(fake.requests_to("/api/v3/klines")) <= pages:
        assert time.monotonic() < deadline, "the download never reached the slow page"
        time.sleep(0.05)
    time.sleep(0.3)


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_keeps_every_page_fetched(workdir: Path, fake: FakeBinance, sig: int, code: int,
                                                    said: str) -> None:
    # SIGTERM (cron's `timeout`) used to kill the process on the spot, losing the pages in hand.
    series = _series(fake)
    fake.fail_next(path="/api/v3/klines", kind="slow", delay=5, after=5)
    proc = _start_download(workdir, fake, series.start_ms)
    _wait_for_hang(fake, 5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert f"error: {said}" in err
    meta = json.loads((workdir / "runs" / last_line(out) / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("interrupted", code)
    stored = _store(workdir).read("BTCUSDT", "1m")
    assert len(stored) == 5 * 200
    assert stored["open_time"].iloc[0] == series.start_ms


def test_resume_after_a_kill(coin, workdir: Path, fake: FakeBinance) -> None:
    series = _series(fake)
    fake.fail_next(path="/api/v3/klines", kind="slow", delay=5, after=6)
    proc = _start_download(workdir, fake, series.start_ms)
    _wait_for_hang(fake, 6)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    kept = _store(workdir).read("BTCUSDT", "1m")
    assert 0 < len(kept) <= 6 * 200
    fake.reset()
    resumed = coin("data", "download", "--interval", "1m", "--json", env=_env(fake))
    assert resumed.returncode == 0, resumed.stderr
    first_request = fake.requests_to("/api/v3/klines")[0]
    assert int(first_request["params"]["startTime"]) == int(kept["open_time"].iloc[-1]) + 1
    final = _store(workdir).read("BTCUSDT", "1m")
    times = final["open_time"].to_numpy()
    assert times[0] == series.start_ms and (times[1:] - times[:-1] == MINUTE).all()
    assert len(final) >= 3000


def test_a_symbol_shaped_like_a_path_is_refused_before_anything_is_written(coin, workdir: Path) -> None:
    # It used to reach the lock file name (an unexpected FileNotFoundError, exit 1) and the store path.
    result = coin("data", "bootstrap", "--symbol", "../../etc", "--interval", "1h", "--rows", "10")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --symbol: data.symbol: expected a Binance symbol such as BTCUSDT "
                                     "(letters and digits), got '../../ETC'")
    assert not (workdir / "data").exists() and not (workdir.parent / "etc").exists()
    empty = coin("data", "validate", "--symbol", "", "--interval", "1h")
    assert empty.returncode == 2 and "data.symbol" in empty.stderr  # not a silent fall back to BTCUSDT
