"""Exchange filters: parsing exchangeInfo with Decimal (both notional filters, a zero market step),
order strings on the step, the numbers handed to the ExecutionModel, and the data-folder cache."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest

from coin_cli.env.execution import ExecutionModel, ExecutionParams
from coin_cli.errors import DataError, ExchangeError
from coin_cli.integrations.binance.filters import (
    cache_path,
    execution_params,
    load_filters,
    parse_symbol_info,
    save_filters,
)

# The filters of reference/binance/rest_exchangeInfo_symbol.json (Binance's doc example, ETHBTC).
ETHBTC = {
    "symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH", "quoteAsset": "BTC",
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "100000.00000000",
         "tickSize": "0.00000100"},
        {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "100000.00000000", "stepSize": "0.00100000"},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00100000", "maxQty": "100000.00000000",
         "stepSize": "0.00100000"},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
         "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
        {"filterType": "NOTIONAL", "minNotional": "10.00000000", "applyMinToMarket": False,
         "maxNotional": "10000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
    ],
}


def _with(info: dict, filter_type: str, **fields: object) -> dict:
    out = copy.deepcopy(info)
    out["filters"] = [f for f in out["filters"] if f["filterType"] != filter_type]
    if fields:
        out["filters"].append({"filterType": filter_type, **fields})
    return out


def test_parses_every_rule_as_decimal() -> None:
    f = parse_symbol_info(ETHBTC)
    assert (f.symbol, f.base_asset, f.quote_asset, f.status) == ("ETHBTC", "ETH", "BTC", "TRADING")
    assert f.lot.step == Decimal("0.001") and f.lot.min_qty == Decimal("0.001")
    assert f.lot.max_qty == Decimal("100000")
    assert f.tick_size == Decimal("0.000001") and f.min_price == Decimal("0.000001")
    assert (f.min_notional, f.max_notional, f.notional_source) == (Decimal("10"), Decimal("10000"), "NOTIONAL")
    assert f.min_notional_market is False
    assert all(isinstance(v, Decimal) for v in (f.tick_size, f.lot.step, f.min_notional))


def test_legacy_min_notional_is_read_when_notional_is_absent() -> None:
    info = _with(_with(ETHBTC, "NOTIONAL"), "MIN_NOTIONAL", minNotional="0.00100000", applyToMarket=True,
                 avgPriceMins=5)
    f = parse_symbol_info(info)
    assert (f.min_notional, f.min_notional_market, f.notional_source) == (Decimal("0.001"), True, "MIN_NOTIONAL")
    bare = parse_symbol_info(_with(ETHBTC, "NOTIONAL"))
    assert (bare.min_notional, bare.notional_source) == (Decimal(0), "none")


def test_a_zero_market_step_falls_back_to_the_lot_step() -> None:
    info = _with(ETHBTC, "MARKET_LOT_SIZE", minQty="0.00000000", maxQty="9000.00000000", stepSize="0.00000000")
    f = parse_symbol_info(info)
    assert f.market_lot is not None and f.market_lot.step == 0
    assert f.market_step == Decimal("0.001")
    assert f.quantity_str(Decimal("1.23456")) == "1.234"   # no ZeroDivisionError, on LOT_SIZE's step


def test_order_strings_are_plain_decimals_on_the_step() -> None:
    f = parse_symbol_info(_with(ETHBTC, "LOT_SIZE", minQty="0.00001000", maxQty="9000", stepSize="0.00001000"))
    assert f.quantity_str(0.1 + 0.2, market=False) == "0.3"        # 0.30000000000000004 -> on the step
    assert f.quantity_str(0.000123456, market=False) == "0.00012"  # never 1.2E-4
    assert f.quantity_str(-2.5, market=False) == "2.5"             # |qty|: the side is sent apart
    assert f.price_str(0.0512345) == "0.051234" and f.price_str(0.0512345, up=True) == "0.051235"
    assert f.price_str("0.0500000") == "0.05"


def test_missing_or_bad_numbers_name_the_field() -> None:
    with pytest.raises(ExchangeError, match="no LOT_SIZE filter"):
        parse_symbol_info(_with(ETHBTC, "LOT_SIZE"), where="x")
    with pytest.raises(ExchangeError, match=r"x: PRICE_FILTER\.tickSize is not a number: 'abc'"):
        parse_symbol_info(_with(ETHBTC, "PRICE_FILTER", minPrice="0", maxPrice="0", tickSize="abc"), where="x")
    with pytest.raises(ExchangeError, match=r"LOT_SIZE\.stepSize must be a finite number >= 0"):
        parse_symbol_info(_with(ETHBTC, "LOT_SIZE", minQty="0", maxQty="1", stepSize="-1"))


def test_execution_params_for_market_orders() -> None:
    base = ExecutionParams(fee_bps=7.5, slippage_bps=2.0, long_only=True)
    info = _with(ETHBTC, "MARKET_LOT_SIZE", minQty="0.01000000", maxQty="100", stepSize="0.00000000")
    p = execution_params(parse_symbol_info(info), base)
    # fees/slippage from settings; lot step from LOT_SIZE (the market step is 0); the stricter min qty;
    # NOTIONAL does not apply to MARKET orders here (applyMinToMarket false)
    assert (p.fee_bps, p.slippage_bps, p.long_only) == (7.5, 2.0, True)
    assert (p.lot_step, p.min_qty, p.tick_size, p.min_notional) == (0.001, 0.01, 0.000001, 0.0)
    applies = execution_params(parse_symbol_info(_with(ETHBTC, "NOTIONAL", minNotional="10", applyMinToMarket=True)),
                               base)
    assert applies.min_notional == 10.0
    # the model uses them: 1.23456 ETH of target at 0.05 rounds down to 1.234
    model = ExecutionModel(p)
    assert model.order_for_target(1.0, cash=0.0617286 * 1.001, qty=0.0, price=0.05) == pytest.approx(1.234)


def test_cache_round_trip_with_fetched_at(tmp_path: Path) -> None:
    path = cache_path(tmp_path / "data", "binance", "ethbtc")
    assert path == tmp_path / "data" / "binance" / "ETHBTC" / "exchange_info.json"
    assert load_filters(path) is None
    save_filters(path, ETHBTC, fetched_at_ms=1_700_000_000_000)
    doc = json.loads(path.read_text())
    assert doc["fetched_at_ms"] == 1_700_000_000_000 and doc["fetched_at"].startswith("2023-11-14T22:13:20")
    loaded, fetched = load_filters(path)
    assert loaded == parse_symbol_info(ETHBTC) and fetched == 1_700_000_000_000
    assert load_filters(path, max_age_s=60) is None            # older than a minute: fetch again
    assert [p.name for p in path.parent.iterdir()] == ["exchange_info.json"]  # no temp file left
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"exchange_info\.json: not a readable exchange_info cache"):
        load_filters(path)


def test_as_dict_is_json_with_decimal_strings() -> None:
    d = parse_symbol_info(ETHBTC).as_dict()
    assert json.loads(json.dumps(d))["lot"] == {"min_qty": "0.001", "max_qty": "100000", "step": "0.001"}
    assert d["tick_size"] == "0.000001" and d["min_notional"] == "10"
