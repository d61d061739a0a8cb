"""`coin trade --mode live` end to end: the real command against the loopback fake Binance
(tests/fakes/binance, its own process) with a funded account: signed orders, its matching engine
(partial fills, EXPIRED remainders), the WS-API user stream, faults. The truth a ledger is compared
with is the fake's own book (`my_trades`, `balances`), never what coin reports about itself."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, run_coin
from tests.fakes.binance import FakeBinanceProcess

CSV = Path(__file__).resolve().parents[1] / "fakes" / "binance" / "data" / "BTCUSDT_5m_600.csv"
HISTORY = 240                     # closed 1s bars before now: the features' warm-up and more
KEY, SECRET = "live-key-0123456789", "live-secret-0123456789abcdef"
FUNDS = 20_000                    # USDT in the account; the ledger trades env.initial_cash (10,000) of it
# VolTarget sized up (target_vol 30) with no band: it buys at once and keeps adjusting; risk wide open
TRADES = {"COIN_POLICY__REBALANCE_BAND": "0", "COIN_POLICY__TARGET_VOL": "30", "COIN_RISK__MAX_DRAWDOWN": "1",
          "COIN_RISK__REDUCE_DRAWDOWN": "1", "COIN_RISK__MAX_DAILY_TURNOVER": "1000000",
          "COIN_RISK__STALE_INTERVALS": "100000"}


@pytest.fixture
def fake():
    with FakeBinanceProcess("--candles", f"BTCUSDT:1s:{HISTORY}:{CSV}",
                            "--account", f"{KEY}:{SECRET}:USDT={FUNDS}") as proc:
        yield proc


def _env(fake: FakeBinanceProcess, **more: str) -> dict[str, str]:
    return {"COIN_BINANCE__API_URL": fake.api_url, "COIN_BINANCE__STREAM_URL": fake.stream_url,
            "COIN_BINANCE__WS_API_URL": fake.ws_api_url, "COIN_BINANCE__MAX_RETRIES": "2",
            "COIN_BINANCE__TIMEOUT": "3", "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, **TRADES, **more}


def _live(cwd: Path, fake: FakeBinanceProcess, *args: str, code: int = 0, **env: str) -> dict[str, Any]:
    result = run_coin(["trade", "--symbol", "BTCUSDT", "--interval", "1s", "--mode", "live", "--confirm-live",
                       *args, "--json"], cwd=cwd, env=_env(fake, **env), timeout=180)
    assert result.returncode == code, result.stderr[-3000:]
    assert KEY not in result.stdout + result.stderr and SECRET not in result.stdout + result.stderr
    return json.loads(result.stdout)


def _ledger(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        orders = [dict(r) for r in conn.execute("SELECT * FROM orders ORDER BY seq")]
        fills = [dict(r) for r in conn.execute("SELECT * FROM fills ORDER BY seq, trade_id")]
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    return orders, fills, meta


def _assert_ledger_is_the_exchange(state_file: Path, fake: FakeBinanceProcess) -> list[dict[str, Any]]:
    """Every trade of the fake is a fill of the ledger with the same id, side, quantity, price and
    commission (and no other fill exists); cash and position plus the start-up baseline are the
    account's balances."""
    orders, fills, meta = _ledger(state_file)
    trades = fake.control("my_trades")["result"]
    by_order = {o["seq"]: o for o in orders}
    ours = {(f["trade_id"], by_order[f["seq"]]["exchange_order_id"], round(f["qty"], 8), f["price"],
             round(f["commission"], 8), f["fee_asset"]) for f in fills}
    exchange = {(t["id"], t["orderId"], round(float(t["qty"]) * (1 if t["isBuyer"] else -1), 8), float(t["price"]),
                 round(float(t["commission"]), 8), t["commissionAsset"]) for t in trades}
    assert ours == exchange and len(fills) == len(trades)
    balances = {a: float(f) + float(lk) for a, (f, lk) in fake.control("balances")["result"].items()}
    baseline = json.loads(meta["live_baseline"])
    last = fills[-1] if fills else None
    cash, qty = (last["cash_after"], last["qty_after"]) if last else (10_000.0, 0.0)
    assert balances["USDT"] == pytest.approx(baseline["USDT"] + cash - 10_000.0, abs=1e-6)
    assert balances.get("BTC", 0.0) == pytest.approx(baseline["BTC"] + qty, abs=1e-8)
    # each order's filled quantity is the sum of its fills
    for o in orders:
        booked = sum(abs(f["qty"]) for f in fills if f["seq"] == o["seq"])
        assert o["filled_qty"] == pytest.approx(booked, abs=1e-9), o
    return orders


def test_live_needs_keys_and_an_explicit_opt_in(workdir: Path) -> None:
    no_keys = run_coin(["trade", "--mode", "live", "--confirm-live"], cwd=workdir)
    assert no_keys.returncode == 2
    assert "BINANCE_API_KEY and BINANCE_API_SECRET in the environment" in no_keys.stderr
    no_opt_in = run_coin(["trade", "--mode", "live"], cwd=workdir,
                         env={"BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET})
    assert no_opt_in.returncode == 2 and "--confirm-live (or trade.live_enabled: true)" in no_opt_in.stderr
    assert "BINANCE_API_KEY" not in no_opt_in.stderr and KEY not in no_opt_in.stderr
    assert not (workdir / "runs" / "state").exists()      # nothing live was touched


def test_twenty_live_bars_book_exactly_what_the_exchange_did(workdir: Path, fake: FakeBinanceProcess) -> None:
    # Every order fills in two trades; at most 0.2 BTC per order, so the first buys EXPIRE part-filled.
    fake.control("fills_per_order", n=2)
    fake.control("liquidity", symbol="BTCUSDT", quantity="0.2")
    summary = _live(workdir, fake, "--max-bars", "20")
    assert summary["bars"] == 20 and summary["broker"] == "binance" and summary["orders_rejected"] == 0
    orders = _assert_ledger_is_the_exchange(workdir / summary["state_file"], fake)
    statuses = [o["status"] for o in orders]
    assert "EXPIRED" in statuses and set(statuses) <= {"FILLED", "EXPIRED"}
    expired = next(o for o in orders if o["status"] == "EXPIRED")
    assert expired["filled_qty"] == pytest.approx(0.2) and abs(expired["qty"]) > 0.2
    # quantities on the wire: Decimal strings on the 0.001 lot step (the fake refuses others with -1013)
    placed = [r for r in fake.control("requests") if r["path"] == "/api/v3/order" and r["method"] == "POST"]
    assert len(placed) == len(orders) and all(r["status"] == 200 for r in placed)
    assert all(len(r["params"]["quantity"].partition(".")[2]) <= 3 for r in placed)
    assert [r["params"]["newClientOrderId"] for r in placed] == [o["client_order_id"] for o in orders]

    # --check: connects, reconciles, prints the account; places nothing
    check = _live(workdir, fake, "--check")
    assert check["status"] == "runtime ready" and check["can_trade"] is True
    assert "balances agree with the ledger" in check["reconcile"]
    assert check["balance.USDT"].endswith("locked") and check["permissions"] == "SPOT"
    assert len(fake.control("my_trades")["result"]) == sum(1 for _ in _ledger(workdir / summary["state_file"])[1])


def test_a_5xx_after_placement_is_queried_never_resent(workdir: Path, fake: FakeBinanceProcess) -> None:
    # The first order IS placed but answered 500, the user stream is stalled and every later query
    # of it fails: the run stops with the order UNKNOWN. The next start asks the exchange (by client
    # order id) and books it.
    fake.control("ws_api_mute", muted=True)
    fake.control("fail_after_placing", n=1, status=500)
    fake.control("fail", path="/api/v3/order", status=503, times=1000, after=1)
    first = _live(workdir, fake, "--max-bars", "4")
    state = workdir / first["state_file"]
    orders, fills, _ = _ledger(state)
    assert [o["status"] for o in orders] == ["UNKNOWN"] and fills == []
    assert len(fake.control("my_trades")["result"]) == 1              # it did trade
    fake.control("reset")                                             # the exchange answers again
    fake.control("ws_api_mute", muted=False)
    _live(workdir, fake, "--max-bars", "3")
    orders = _assert_ledger_is_the_exchange(state, fake)
    assert orders[0]["status"] == "FILLED"
    posts = [r["params"]["newClientOrderId"] for r in fake.control("requests")
             if r["path"] == "/api/v3/order" and r["method"] == "POST"]
    assert orders[0]["client_order_id"] not in posts                  # never sent again after the restart


def test_a_5xx_after_placement_is_booked_from_the_user_stream(workdir: Path, fake: FakeBinanceProcess) -> None:
    fake.control("fail_after_placing", n=1, status=500)
    summary = _live(workdir, fake, "--max-bars", "4")
    orders = _assert_ledger_is_the_exchange(workdir / summary["state_file"], fake)
    assert orders[0]["status"] == "FILLED" and summary["orders_unknown"] == 1
    posts = [r for r in fake.control("requests") if r["path"] == "/api/v3/order" and r["method"] == "POST"]
    assert len(posts) == len(orders)                                  # one request per order, none re-sent


def test_kill_9_mid_run_then_restart_equals_the_exchange(workdir: Path, fake: FakeBinanceProcess) -> None:
    fake.control("liquidity", symbol="BTCUSDT", quantity="0.1")      # an order on most bars
    cmd = [sys.executable, "-m", "coin_cli", "trade", "--symbol", "BTCUSDT", "--interval", "1s", "--mode", "live",
           "--confirm-live", "--max-bars", "60", "--prom-file", "coin.prom"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=clean_env(_env(fake)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(fake.control("my_trades")["result"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        # the run appends the stream's candles to the store: a download of the same dataset waits its turn
        download = run_coin(["data", "download", "--symbol", "BTCUSDT", "--interval", "1s"], cwd=workdir,
                            env=_env(fake))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert download.returncode == 5 and "holds this lock (coin trade --mode live, pid" in download.stderr
    prom = (workdir / "coin.prom").read_text()                        # written during the run, not only at its end
    assert 'mode="live"' in prom and "coin_equity" in prom
    again = _live(workdir, fake, "--max-bars", "3")
    orders = _assert_ledger_is_the_exchange(workdir / again["state_file"], fake)
    cids = [o["client_order_id"] for o in orders]
    assert len(cids) == len(set(cids)) >= 3
    assert again["risk_state"] == "ACTIVE"


def test_user_stream_drop_resubscribes_and_resyncs_without_double_booking(workdir: Path,
                                                                          fake: FakeBinanceProcess) -> None:
    fake.control("liquidity", symbol="BTCUSDT", quantity="0.1")
    cmd = [sys.executable, "-m", "coin_cli", "trade", "--symbol", "BTCUSDT", "--interval", "1s", "--mode", "live",
           "--confirm-live", "--max-bars", "14", "--json"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=clean_env(_env(fake)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fake.control("my_trades")["result"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    fake.control("ws_api_drop", mode="abort")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    _assert_ledger_is_the_exchange(workdir / summary["state_file"], fake)
    metrics = [json.loads(line) for line in (workdir / "runs" / summary["run_id"] / "metrics.jsonl").read_text()
               .splitlines()]
    assert summary["reconciles"] >= 2, summary                         # at start and after the re-subscription
    assert summary["user_stream_subscriptions"] >= 2, summary
    assert not [m for m in metrics if "reconcile_mismatch" in m]


def test_a_hand_placed_order_is_reported_and_halts_beyond_the_tolerance(workdir: Path,
                                                                         fake: FakeBinanceProcess) -> None:
    first = _live(workdir, fake, "--max-bars", "3", COIN_POLICY__TARGET_VOL="0.5")
    before = len(fake.control("my_trades")["result"])
    fake.control("place_by_hand", symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.2")
    fake.control("place_by_hand", symbol="BTCUSDT", side="SELL", type="LIMIT", quantity="0.05",
                 price="99999", timeInForce="GTC", newClientOrderId="web_limit")
    halted = _live(workdir, fake, "--max-bars", "3", code=5, COIN_POLICY__TARGET_VOL="0.5")
    assert halted["state_file"] == first["state_file"] and halted["risk_state"] == "HALTED"
    assert "reconcile" in halted["risk_reason"] and "risk.reconcile_tolerance" in halted["risk_reason"]
    assert len(fake.control("my_trades")["result"]) == before + 1     # the hand trade only: coin sent nothing
    metrics = [json.loads(line) for line in (workdir / "runs" / halted["run_id"] / "metrics.jsonl").read_text()
               .splitlines()]
    found = " | ".join(m["reconcile_mismatch"] for m in metrics if "reconcile_mismatch" in m)
    assert "web_limit" in found and "not adopted" in found
    assert "balances differ from the ledger: BTC exchange" in found
    assert "(+0.19980000)" in found                                   # 0.2 less its 0.1% commission in BTC


def test_a_rejected_order_is_an_alert_with_the_reason_and_never_retried(workdir: Path,
                                                                      fake: FakeBinanceProcess) -> None:
    fake.control("fail", path="/api/v3/order", status=400, code=-2010,
                 msg="Account has insufficient balance for requested action.")
    summary = _live(workdir, fake, "--max-bars", "5")
    orders = _assert_ledger_is_the_exchange(workdir / summary["state_file"], fake)
    first = orders[0]
    assert first["status"] == "REJECTED" and "insufficient balance" in first["status_detail"]
    assert "-2010" in first["status_detail"] and summary["orders_rejected"] == 1
    posts = [r["params"]["newClientOrderId"] for r in fake.control("requests")
             if r["path"] == "/api/v3/order" and r["method"] == "POST"]
    assert posts.count(first["client_order_id"]) == 1                 # refused: not sent again
    assert summary["performance"]["alerts_raised"].get("ORDER_REJECTED") == 1, summary["performance"]
