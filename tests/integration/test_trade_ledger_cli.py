"""`coin trade` ledgers through the real command: one ledger per identity (issue 11 item 2), the
kill switch that cuts exposure (item 3), output paths checked before the first bar (item 6),
SIGTERM = 143 (item 7). Candles: coin's own bootstrap series (no ../shared needed)."""

from __future__ import annotations

import json
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
    before = ledger.read_bytes()
    other = coin(*REPLAY, "--policy", "buyhold", "--state-file", str(ledger), env=BOOT)
    assert other.returncode == 2, other.stderr
    assert "voltarget(" in other.stderr and "buyhold(" in other.stderr and "differ in policy" in other.stderr
    fee = coin(*REPLAY, "--policy", "voltarget", "--state-file", str(ledger), env={**BOOT, "COIN_ENV__FEE_BPS": "25"})
    assert fee.returncode == 2 and "fee_bps=25.0" in fee.stderr and "fee_bps=10.0" in fee.stderr
    cash = coin(*REPLAY, "--policy", "voltarget", "--state-file", str(ledger),
                env={**BOOT, "COIN_ENV__INITIAL_CASH": "500"})
    assert cash.returncode == 2 and "initial_cash" in cash.stderr
    assert ledger.read_bytes() == before                                     # refused, never touched
