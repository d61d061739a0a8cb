"""The loop in-process: durable intents for venue brokers and recovery without resubmitting,
stale data, rejected orders, gaps filled in order, accounting after every bar."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coin_cli.config import Settings, load_settings
from coin_cli.runtime.brokers import OrderRejected, PaperBroker
from coin_cli.runtime.build import Runtime, TradeRequest, build_runtime
from coin_cli.runtime.events import Candle
from coin_cli.runtime.loop import process_market_event, run_runtime


def _settings(root: Path, state: str = "state.sqlite", **more: Any) -> Settings:
    overrides = {"paths.runs_dir": root / "runs", "paths.data_dir": root / "data", "trade.mode": "replay",
                 "data.bootstrap_rows": 700, "trade.state_file": root / state, "risk.max_drawdown": 1.0,
                 "risk.reduce_drawdown": 1.0, **more}
    return load_settings(None, env={}, overrides={k: (v, "test") for k, v in overrides.items()})


def _ledger(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        # every order column but updated_ms (the wall-clock time of the venue's last answer)
        return {"orders": [row[:14] for row in conn.execute("SELECT * FROM orders ORDER BY seq")],
                "fills": conn.execute("SELECT * FROM fills ORDER BY seq").fetchall(),
                "account": conn.execute("SELECT last_bar, bars, cash, pending_target FROM account").fetchall()}
    finally:
        conn.close()


class VenueBroker(PaperBroker):
    """A broker at the seam the Binance broker will use (external): it records what the state file
    held when each order reached it, and can vanish mid-order like a crashed process."""

    def __init__(self, execution: Any, portfolio: Any, state_path: Path, fail_at: int | None = None) -> None:
        super().__init__(execution, portfolio, external=True)
        self.state_path, self.fail_at = state_path, fail_at
        self.seen: list[tuple[str, Any]] = []

    def submit(self, intent: Any) -> Any:
        conn = sqlite3.connect(self.state_path)
        row = conn.execute("SELECT status FROM orders WHERE client_order_id = ?", (intent.client_order_id,)).fetchone()
        conn.close()
        self.seen.append((intent.client_order_id, row))
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            raise ConnectionResetError("venue connection lost mid-order")
        return super().submit(intent)


def _run(rt: Runtime) -> Runtime:
    try:
        run_runtime(rt)
    finally:
        rt.close()
    return rt


def test_venue_broker_sees_committed_intents_and_a_restart_never_resubmits(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state = tmp_path / "state.sqlite"
    first: list[VenueBroker] = []

    def crashing(execution: Any, portfolio: Any) -> VenueBroker:
        first.append(VenueBroker(execution, portfolio, state, fail_at=5))
        return first[0]

    with pytest.raises(ConnectionResetError):
        _run(build_runtime(settings, None, TradeRequest(), broker_factory=crashing))
    assert [row for _, row in first[0].seen] == [("INTENT",)] * 5     # committed before the venue saw it
    lost = first[0].seen[-1][0]

    second: list[VenueBroker] = []

    def venue(execution: Any, portfolio: Any) -> VenueBroker:
        second.append(VenueBroker(execution, portfolio, state))
        return second[0]

    _run(build_runtime(settings, None, TradeRequest(), broker_factory=venue))
    resubmitted = [cid for cid, _ in second[0].seen]
    assert lost not in resubmitted and second[0].recovered == 1
    assert len(resubmitted) == len(set(resubmitted)) > 10

    _run(build_runtime(_settings(tmp_path, "reference.sqlite"), None, TradeRequest()))
    assert _ledger(state) == _ledger(tmp_path / "reference.sqlite")
    assert {row[10] for row in _ledger(state)["orders"]} == {"FILLED"}


def test_stale_bars_add_no_risk_and_alert_once(tmp_path: Path) -> None:
    rt = build_runtime(_settings(tmp_path), None, TradeRequest())
    rt.clock = lambda: 4_102_444_800_000         # 2100-01-01: every bar is far older than 2 intervals
    _run(rt)
    assert rt.parts.portfolio.trades == 0 and rt.parts.portfolio.qty == 0.0
    codes = [a.code for a in rt.parts.alerts.notifier.sent]
    assert codes == ["STALE_DATA"]


class RejectingVenue(PaperBroker):
    def submit(self, intent: Any) -> Any:
        raise OrderRejected("Filter failure: NOTIONAL")


def test_rejected_orders_are_recorded_and_alerted(tmp_path: Path) -> None:
    rt = _run(build_runtime(_settings(tmp_path), None, TradeRequest(), broker_factory=RejectingVenue))
    orders = _ledger(tmp_path / "state.sqlite")["orders"]
    assert orders and {row[10] for row in orders} == {"REJECTED"}
    assert rt.rejected == len(orders) and rt.parts.portfolio.trades == 0
    sent = [a for a in rt.parts.alerts.notifier.sent if a.code == "ORDER_REJECTED"]
    assert len(sent) == len(orders) and "NOTIONAL" in sent[0].text


def test_live_style_events_gaps_duplicates_and_open_candles(tmp_path: Path) -> None:
    # One candle at a time as a stream would send them, with a hole, repeats and in-progress klines:
    # the ledger must equal the replay of the same bars.
    rt = build_runtime(_settings(tmp_path), None, TradeRequest())
    arrays = rt.parts.source.arrays
    candles = arrays.candles(0, len(arrays))
    for i, c in enumerate(candles):
        if 300 <= i < 305:
            continue                              # the hole: filled from the provider before bar 305
        if i % 50 == 0:
            process_market_event(rt, Candle(c.open_time, c.open, c.high, c.low, c.close * 1.01, c.volume,
                                            c.close_time, closed=False))
        process_market_event(rt, c)
        if i % 70 == 0:
            process_market_event(rt, c)            # a repeat
    rt.commit()
    rt.close()
    assert rt.parts.gap_filler.stats() == {"gaps": 1, "gap_bars_filled": 5, "duplicates_dropped": 10,
                                     "open_candles_dropped": 13}   # i % 50 == 0 except 300, in the hole
    _run(build_runtime(_settings(tmp_path, "reference.sqlite"), None, TradeRequest()))
    assert _ledger(tmp_path / "state.sqlite") == _ledger(tmp_path / "reference.sqlite")


def test_cash_plus_position_is_equity_after_every_fill(tmp_path: Path) -> None:
    rt = _run(build_runtime(_settings(tmp_path, **{"env.fee_bps": 7.5}), None, TradeRequest()))
    fills = _ledger(tmp_path / "state.sqlite")["fills"]
    cash, qty = 10_000.0, 0.0
    for _seq, _bar, fqty, price, notional, fee, cash_after, qty_after, *_trade in fills:
        assert fee == pytest.approx(notional * 0.00075, rel=1e-12)
        cash, qty = cash - fqty * price - fee, qty + fqty
        assert (cash_after, qty_after) == (pytest.approx(cash, rel=1e-12), pytest.approx(qty, abs=1e-12))
    assert rt.parts.portfolio.fees == pytest.approx(sum(f[5] for f in fills), rel=1e-12)
    # prices and the final equity against the candles as stored (read with pandas, not the store)
    import math

    import pandas as pd

    candles = pd.read_parquet(tmp_path / "data" / "binance" / "BTCUSDT" / "1h.parquet").set_index("open_time")
    for _seq, bar, fqty, price, *_rest in fills:           # fills at the bar's open, 5 bps against the trader
        raw = candles.loc[bar, "open"] * (1.0005 if fqty > 0 else 0.9995)
        ticks = math.ceil(raw / 0.01 - 1e-9) if fqty > 0 else math.floor(raw / 0.01 + 1e-9)
        assert price == pytest.approx(ticks * 0.01, abs=1e-9)
    last_close = float(candles["close"].iloc[-1])
    pf = rt.parts.portfolio
    assert pf.cash == pytest.approx(cash, rel=1e-12) and pf.qty == pytest.approx(qty, abs=1e-12)
    assert rt.snapshot()["equity"] == pytest.approx(cash + qty * last_close, rel=1e-12)
