"""OrderManager: deterministic client order ids and exchange-filter rounding via the ExecutionModel."""

from __future__ import annotations

import re

import pytest

from coin_cli.env.execution import ExecutionModel, ExecutionParams
from coin_cli.errors import UsageError
from coin_cli.runtime.orders import OrderManager, check_strategy_id, client_order_id
from coin_cli.runtime.risk import RiskLimits, RiskManager

BINANCE_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")


def _manager(**risk: float) -> OrderManager:
    model = ExecutionModel(ExecutionParams(fee_bps=10, slippage_bps=5, lot_step=0.001, min_qty=0.001,
                                           tick_size=0.01, min_notional=10.0))
    return OrderManager("coin", "BTCUSDT", model, RiskManager(RiskLimits(**risk)))


def test_client_order_id_is_deterministic_short_and_distinct() -> None:
    a = client_order_id("coin", "BTCUSDT", 1_606_780_800_000, 0)
    assert a == "coin-BTCUSDT-1606780800000-0"
    assert a == client_order_id("coin", "BTCUSDT", 1_606_780_800_000, 0)
    others = {client_order_id("coin", "BTCUSDT", 1_606_780_800_000, 1),
              client_order_id("coin", "BTCUSDT", 1_606_781_100_000, 0),
              client_order_id("coin", "ETHUSDT", 1_606_780_800_000, 0),
              client_order_id("coin2", "BTCUSDT", 1_606_780_800_000, 0)}
    assert a not in others and len(others) == 4
    long_id = client_order_id("a-long-strategy1", "1000SHIBUSDTPERP", 1_606_780_800_000, 1)
    assert len(long_id) <= 36 and BINANCE_ID.match(long_id)
    assert long_id == client_order_id("a-long-strategy1", "1000SHIBUSDTPERP", 1_606_780_800_000, 1)
    assert long_id != client_order_id("a-long-strategy1", "1000SHIBUSDTPERP", 1_606_780_800_000, 0)
    for cid in [a, *others]:
        assert BINANCE_ID.match(cid)


def test_strategy_id_must_fit_a_client_order_id() -> None:
    assert check_strategy_id("coin_1") == "coin_1"
    for bad in ("", "has space", "x" * 17, "ünï"):
        with pytest.raises(UsageError, match=r"trade\.strategy_id"):
            check_strategy_id(bad)


def test_intent_is_lot_rounded_and_signed() -> None:
    om = _manager()
    intent = om.target_to_intent(0.5, cash=10_000.0, qty=0.0, price=123.0, decision_bar=1, exec_bar=2)
    assert intent is not None
    # 0.5 * 10000 / 123 = 40.6504... -> 40.650 (LOT_SIZE step 0.001, rounded down)
    assert intent.qty == 40.65
    assert intent.client_order_id == "coin-BTCUSDT-1-0" and intent.seq == 1
    sell = om.target_to_intent(0.0, cash=5000.0, qty=40.65, price=123.0, decision_bar=3, exec_bar=4)
    assert sell is not None and sell.qty == -40.65 and sell.side == "SELL" and sell.seq == 2


def test_nothing_below_min_notional() -> None:
    om = _manager()
    # Moving 0.5 -> 0.5008 of a 10k account is an 8-quote order: under the 10-quote minimum.
    assert om.target_to_intent(0.5008, cash=5000.0, qty=5000.0 / 123.0, price=123.0, decision_bar=1,
                               exec_bar=2) is None
    assert om.order_seq == 0


def test_order_cap_is_sized_again_by_the_execution_model() -> None:
    om = _manager(max_order_notional=1000.0)
    intent = om.target_to_intent(0.5, cash=10_000.0, qty=0.0, price=123.0, decision_bar=1, exec_bar=2)
    assert intent is not None and intent.reason == "cap: max_order_notional"
    assert intent.qty * 123.0 <= 1000.0
    assert intent.qty == 8.13     # 1000 / 123 = 8.1300813 -> lot step
