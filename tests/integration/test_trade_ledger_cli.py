"""`coin trade` ledgers through the real command: one ledger per identity (issue 11 item 2), the
kill switch that cuts exposure (item 3), output paths checked before the first bar (item 6),
SIGTERM = 143 (item 7). Candles: coin's own bootstrap series (no ../shared needed)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

BOOT = {"COIN_DATA__BOOTSTRAP_ROWS": "3000"}
REPLAY = ("trade", "--mode", "replay", "--json")


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def _fills(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    finally:
        conn.close()


def _account(path: Path) -> tuple:
    """The ledger's account row and fill count, read through SQLite (WAL: the main file's bytes
    alone would not show a commit)."""
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT last_bar, bars, cash FROM account").fetchall(),
                conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0])
    finally:
        conn.close()


def test_another_policy_gets_its_own_ledger_by_default(coin, workdir: Path) -> None:
    vol = _json(coin(*REPLAY, "--policy", "voltarget", "--max-bars", "2000", env=BOOT))
    hold = _json(coin(*REPLAY, "--policy", "buyhold", "--max-bars", "2000", env=BOOT))
    assert vol["state_file"] != hold["state_file"]
    assert "voltarget" in Path(vol["state_file"]).name and "buyhold" in Path(hold["state_file"]).name
    assert hold["resumed_from"] is None and hold["bars_total"] == 2000      # a new ledger, not voltarget's
    assert _fills(Path(hold["state_file"])) == hold["trades"] == 1           # buy and hold: one buy
    assert vol["trades"] > 1
    again = _json(coin(*REPLAY, "--policy", "voltarget", "--max-bars", "100", env=BOOT))
    assert again["state_file"] == vol["state_file"] and again["resumed_from"] == vol["last_bar"]


def test_an_explicit_state_file_of_another_identity_is_refused(coin, workdir: Path) -> None:
    ledger = workdir / "mine.sqlite"
    first = coin(*REPLAY, "--policy", "voltarget", "--max-bars", "500", "--state-file", str(ledger), env=BOOT)
    assert first.returncode == 0, first.stderr
    before = _account(ledger)
    other = coin(*REPLAY, "--policy", "buyhold", "--state-file", str(ledger), env=BOOT)
    assert other.returncode == 2, other.stderr
    assert "voltarget(" in other.stderr and "buyhold(" in other.stderr and "differ in policy" in other.stderr
    fee = coin(*REPLAY, "--policy", "voltarget", "--state-file", str(ledger), env={**BOOT, "COIN_ENV__FEE_BPS": "25"})
    assert fee.returncode == 2 and "fee_bps=25.0" in fee.stderr and "fee_bps=10.0" in fee.stderr
    cash = coin(*REPLAY, "--policy", "voltarget", "--state-file", str(ledger),
                env={**BOOT, "COIN_ENV__INITIAL_CASH": "500"})
    assert cash.returncode == 2 and "initial_cash" in cash.stderr
    assert _account(ledger) == before                                        # refused, never touched


# ---- the kill switch cuts exposure (item 3) --------------------------------------------------------

HOUR_MS = 3_600_000
FEE_AND_SLIPPAGE = 0.0015     # the defaults: fee 10 bps + slippage 5 bps on the flattening sell


def _crash_csv(path: Path) -> list[tuple[int, float, float, float, float, float]]:
    """A calm rise (the features warm up, buy-and-hold buys), then a fall of 1.5% per bar with no
    bounce: a position kept after the halt would lose ~95%."""
    rows, price = [], 20_000.0
    for i in range(900):
        step = 1.0002 if i < 600 else 0.985
        open_, close = price, price * step
        rows.append((1_600_000_000_000 // HOUR_MS * HOUR_MS + i * HOUR_MS, open_, max(open_, close) * 1.001,
                     min(open_, close) * 0.999, close, 10.0))
        price = close
    lines = ["open_time_ms,open,high,low,close,volume"] + [",".join(f"{v:.8f}" if isinstance(v, float) else str(v)
                                                                     for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return rows


def test_the_default_kill_switch_leaves_no_position_and_bounds_the_drawdown(coin, workdir: Path) -> None:
    rows = _crash_csv(workdir / "crash.csv")
    imported = coin("data", "import", str(workdir / "crash.csv"), "--symbol", "BTCUSDT", "--interval", "1h")
    assert imported.returncode == 0, imported.stderr
    # a turnover cap far below the position: the flattening sell must still go through whole
    result = coin(*REPLAY, "--policy", "buyhold", "--symbol", "BTCUSDT", "--interval", "1h",
                  env={"COIN_RISK__MAX_DAILY_TURNOVER": "0.5", "COIN_RISK__MAX_ORDER_NOTIONAL": "100"})
    assert result.returncode == 5, result.stderr
    summary = _json(result)
    assert summary["risk_state"] == "HALTED" and summary["position"] == 0.0
    # item 10: log lines carry an ISO UTC date, bars are ISO times, never raw milliseconds
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ERROR coin\.runtime\.risk: risk REDUCING -> HALTED at bar "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result.stderr, re.M), result.stderr
    assert re.search(r"trading halted at bar \d{4}-\d\d-\d\dT", result.stderr), result.stderr
    assert not re.search(r"\b1\d{12}\b", result.stderr)
    conn = sqlite3.connect(summary["state_file"])
    try:
        halt_bar = conn.execute("SELECT bar FROM risk_events WHERE to_state = 'HALTED'").fetchone()[0]
        flatten = conn.execute("SELECT f.bar, f.qty, f.qty_after FROM fills f JOIN orders o USING (seq) "
                               "WHERE o.leg = 1").fetchall()
    finally:
        conn.close()
    # one flattening sell, at the open right after the halt bar, leaving nothing
    assert len(flatten) == 1 and flatten[0][0] == halt_bar + HOUR_MS and flatten[0][2] == 0.0
    # drawdown bound, from the candles alone: the limit plus the halt bar's move and the next open's
    # gap (none here) and the sell's fee and slippage
    i = next(k for k, r in enumerate(rows) if r[0] == halt_bar)
    halt_move = abs(rows[i][4] / rows[i - 1][4] - 1.0)
    gap = abs(rows[i + 1][1] / rows[i][4] - 1.0)
    assert 0.2 <= summary["max_drawdown"] <= 0.2 + halt_move + gap + FEE_AND_SLIPPAGE
    assert summary["max_drawdown"] < 0.25          # kept, the position would have gone on to lose ~95%


# ---- output paths checked before the first bar (item 6) -------------------------------------------

def test_a_bad_output_path_is_exit_2_before_any_bar(coin, workdir: Path) -> None:
    (workdir / "afile").write_text("x")
    ledger = workdir / "l.sqlite"
    first = coin(*REPLAY, "--max-bars", "10", "--state-file", str(ledger), env=BOOT)
    assert first.returncode == 0, first.stderr
    before = _account(ledger)
    assert before[0][0][1] == 10
    bad = coin(*REPLAY, "--max-bars", "10", "--state-file", str(ledger), "--prom-file", "afile/coin.prom", env=BOOT)
    assert bad.returncode == 2 and "--prom-file afile/coin.prom" in bad.stderr and "is a file" in bad.stderr
    assert bad.stderr.count("error:") == 1 and "unexpected" not in bad.stderr
    assert _account(ledger) == before                                      # the ledger did not advance
    folder = coin(*REPLAY, "--prom-file", str(workdir), env=BOOT)
    assert folder.returncode == 2 and "is a folder" in folder.stderr
    state = coin(*REPLAY, "--state-file", "afile/x.sqlite", env=BOOT)
    assert state.returncode == 2 and "--state-file afile/x.sqlite" in state.stderr
