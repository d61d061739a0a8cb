"""The execution model's arithmetic, computed by hand: fee, slippage, tick, lot rounding,
min-notional / min-qty skips, long-only cash fit."""

from __future__ import annotations

import math

import pytest

from coin_cli.config import EnvConfig, Settings
from coin_cli.env.execution import ExecutionModel, ExecutionParams, Fill


def model(**kw: object) -> ExecutionModel:
    return ExecutionModel(ExecutionParams(**kw))  # type: ignore[arg-type]


def test_params_from_settings_and_env_section() -> None:
    settings = Settings(env=EnvConfig(fee_bps=7.5, slippage_bps=1.0, min_notional=10.0, long_only=False))
    params = ExecutionParams.from_settings(settings)
    assert params == ExecutionParams.from_settings(settings.env)
    assert (params.fee_bps, params.slippage_bps, params.min_notional, params.long_only) == (7.5, 1.0, 10.0, False)
    assert ExecutionParams.from_settings(Settings()) == ExecutionParams()


def test_buy_half_from_cash_fee_and_slippage_by_hand() -> None:
    m = model(fee_bps=10.0, slippage_bps=5.0, lot_step=0.001, tick_size=0.01)
    qty = m.order_for_target(0.5, cash=10_000.0, qty=0.0, price=100.0)
    assert qty == 50.0  # 0.5 * 10000 / 100
    fill = m.fill(qty, 100.0)
    assert fill == Fill(qty=50.0, price=100.05, notional=pytest.approx(5002.5), fee=pytest.approx(5.0025))
    cash, pos = m.apply(fill, 10_000.0, 0.0)
    assert cash == pytest.approx(10_000.0 - 5002.5 - 5.0025, abs=1e-9) and pos == 50.0
    assert fill.side == "BUY"


def test_sell_slippage_and_tick_round_against_the_trader() -> None:
    m = model(fee_bps=10.0, slippage_bps=5.0, tick_size=0.01)
    # 101.234 * (1 - 0.0005) = 101.1833... -> sells round DOWN to 101.18
    fill = m.fill(-2.0, 101.234)
    assert fill.price == 101.18 and fill.notional == pytest.approx(202.36) and fill.fee == pytest.approx(0.20236)
    assert fill.side == "SELL" and fill.cash_delta == pytest.approx(202.36 - 0.20236)
    # 101.234 * 1.0005 = 101.2846... -> buys round UP to 101.29; an exact tick stays put
    assert m.fill(1.0, 101.234).price == 101.29
    assert m.fill(1.0, 100.0).price == 100.05


def test_sizing_uses_equity_at_the_open_and_rounds_down_to_the_lot() -> None:
    m = model(lot_step=0.00001, fee_bps=0.0, slippage_bps=0.0)
    # holding 0.1 BTC and 7000 cash; the open is 30000 -> equity 10000; 50% -> 0.16666.. BTC
    order = m.order_for_target(0.5, cash=7_000.0, qty=0.1, price=30_000.0)
    assert order == pytest.approx(0.06666)  # 0.1666666 rounded DOWN to 0.16666, minus 0.1
    assert order == round(order, 5)
    # selling rounds toward zero too: target 0.2 of 10000 at 30000 = 0.0666.. -> sell 0.03334 (not 0.03333..)
    sell = m.order_for_target(0.2, cash=7_000.0, qty=0.1, price=30_000.0)
    assert sell == pytest.approx(-0.03333)


def test_target_zero_sells_the_whole_position_without_dust() -> None:
    m = model(lot_step=0.00001)
    qty = 0.00012 + 0.00003 + 0.1  # a position built from several lot-rounded fills
    order = m.order_for_target(0.0, cash=0.0, qty=qty, price=30_000.0)
    fill = m.fill(order, 30_000.0)
    _, left = m.apply(fill, 0.0, qty)
    assert left == 0.0


def test_min_notional_and_min_qty_skip() -> None:
    m = model(min_notional=5.0, min_qty=0.001, lot_step=0.0001, fee_bps=0.0, slippage_bps=0.0)
    # 4.99 quote of change: skipped; 5.01: done
    assert m.order_for_target(0.5, cash=504.99, qty=4.9501, price=100.0) == 0.0
    assert m.order_for_target(0.5, cash=505.01, qty=4.9499, price=100.0) == pytest.approx(0.0501)
    # 0.0009 BTC at 10000 is 9 quote (enough notional) but less than min_qty 0.001
    assert m.order_for_target(0.5, cash=5_009.0, qty=0.4991, price=10_000.0) == 0.0
    no_min_qty = model(min_notional=5.0, min_qty=0.0, lot_step=0.0001, fee_bps=0.0, slippage_bps=0.0)
    assert no_min_qty.order_for_target(0.5, cash=5_009.0, qty=0.4991, price=10_000.0) == pytest.approx(0.0009)
    # a position worth less than min_notional cannot be sold (exchange dust)
    assert m.order_for_target(0.0, cash=1_000.0, qty=0.04, price=100.0) == 0.0


def test_long_only_full_weight_fits_cash_and_fee() -> None:
    m = model(fee_bps=10.0, slippage_bps=5.0, lot_step=0.00001, tick_size=0.01)
    order = m.order_for_target(1.0, cash=10_000.0, qty=0.0, price=100.0)
    # 10000 / (100.05 * 1.001) = 99.8501... -> 99.85010 (lot 1e-5)
    assert order == pytest.approx(math.floor(10_000.0 / (100.05 * 1.001) / 1e-5) * 1e-5)
    cash, _ = m.apply(m.fill(order, 100.0), 10_000.0, 0.0)
    assert 0.0 <= cash < 100.05 * 1e-5 * 1.001 + 1e-9


@pytest.mark.parametrize("price", [0.37, 1.0, 99.99, 123.456, 29_999.99, 61_000.01])
def test_long_only_cash_never_negative_over_many_rebalances(price: float) -> None:
    m = model(fee_bps=10.0, slippage_bps=5.0, lot_step=0.00001, tick_size=0.01, min_notional=1.0)
    cash, qty = 1_000.0, 0.0
    for i in range(300):
        weight = [1.0, 0.3, 0.999, 0.0, 1.0, 0.7][i % 6]
        open_price = price * (1 + 0.01 * math.sin(i))
        _, cash, qty = m.execute(weight, cash, qty, open_price)
        assert cash >= 0.0 and qty >= 0.0


def test_long_only_clips_weights_and_shorts_when_allowed() -> None:
    long_only = model(fee_bps=0.0, slippage_bps=0.0)
    assert long_only.order_for_target(-1.0, cash=1_000.0, qty=0.0, price=10.0) == 0.0
    assert long_only.order_for_target(5.0, cash=1_000.0, qty=0.0, price=10.0) == 100.0
    shorting = model(fee_bps=0.0, slippage_bps=0.0, long_only=False)
    assert shorting.order_for_target(-0.5, cash=1_000.0, qty=0.0, price=10.0) == -50.0
    assert shorting.clip_weight(-3.0) == -1.0 and long_only.clip_weight(-3.0) == 0.0
    fill, cash, qty = shorting.execute(-0.5, 1_000.0, 0.0, 10.0)
    assert fill is not None and (cash, qty) == (1_500.0, -50.0)
    # back to flat buys the short back
    assert shorting.order_for_target(0.0, cash=cash, qty=qty, price=10.0) == 50.0


def test_nan_target_or_bad_price_holds() -> None:
    m = model()
    assert m.order_for_target(float("nan"), cash=1_000.0, qty=0.0, price=10.0) == 0.0
    assert m.order_for_target(0.5, cash=1_000.0, qty=0.0, price=0.0) == 0.0
    assert m.execute(0.5, 0.0, 0.0, 10.0) == (None, 0.0, 0.0)


@pytest.mark.parametrize("long_only", [True, False])
@pytest.mark.parametrize("step,tick", [(0.00001, 0.01), (0.001, 0.0), (0.0, 0.5), (0.25, 0.0001)])
def test_fused_execute_equals_the_three_calls(long_only: bool, step: float, tick: float) -> None:
    import random

    m = model(fee_bps=10.0, slippage_bps=5.0, lot_step=step, min_qty=step, tick_size=tick, min_notional=5.0,
              long_only=long_only)
    rng = random.Random(5)
    for _ in range(3000):
        price = 10 ** rng.uniform(-1, 5)
        cash = rng.choice([0.0, rng.uniform(0, 20_000)])
        short = -rng.uniform(0, 5_000) / price if not long_only else 0.0
        qty = rng.choice([0.0, rng.uniform(0, 20_000) / price, short])
        weight = rng.choice([0.0, 1.0, -1.0, 2.0, rng.uniform(-1, 1), float("nan")])
        order = m.order_for_target(weight, cash, qty, price)
        fused = m.execute(weight, cash, qty, price)
        if order == 0.0:
            assert fused == (None, cash, qty)
            continue
        fill = m.fill(order, price)
        assert fused == (fill, *m.apply(fill, cash, qty)), (weight, cash, qty, price)


def test_min_notional_is_checked_at_the_fill_price_after_slippage() -> None:
    # slippage 100 bps, tick 0.01, min_notional 10: selling 0.1 at an open of 100.5 is 10.05 at the
    # open but fills at 99.49 (100.5 * 0.99 = 99.495, down to the tick) -> 9.949 < 10: refused
    m = model(min_notional=10.0, min_qty=0.0, lot_step=0.1, tick_size=0.01, fee_bps=0.0, slippage_bps=100.0)
    assert 0.1 * 100.5 >= 10.0 and 0.1 * 99.49 < 10.0
    assert m.order_for_target(0.0, cash=0.0, qty=0.1, price=100.5) == 0.0
    assert m.execute(0.0, 0.0, 0.1, 100.5) == (None, 0.0, 0.1)
    # a buy of 0.1 at an open of 99.5: 9.95 at the open, fills at 100.50 (99.5 * 1.01 = 100.495, up) -> 10.05: done
    assert 0.1 * 99.5 < 10.0 and 0.1 * 100.50 >= 10.0
    assert m.order_for_target(1.0, cash=10.06, qty=0.0, price=99.5) == pytest.approx(0.1)
    fill, _, qty = m.execute(1.0, 10.06, 0.0, 99.5)
    assert fill is not None and fill.price == 100.5 and qty == pytest.approx(0.1)
