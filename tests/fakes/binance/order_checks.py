"""New-order parameter and filter checks of the fake (-1102, -1100, -1116, -1013), per filters.md."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from tests.fakes.binance.account import ZERO
from tests.fakes.binance.server import ApiError


def _missing(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not value.is_finite() or value < 0:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return value


def _fail(name: str) -> ApiError:
    return ApiError(400, -1013, f"Filter failure: {name}")


def _check_grid(value: Decimal, spec: dict[str, Any], lo: str, hi: str, step: str, name: str) -> None:
    minimum, maximum, tick = Decimal(spec[lo]), Decimal(spec[hi]), Decimal(spec[step])
    if (minimum > 0 and value < minimum) or (maximum > 0 and value > maximum):
        raise _fail(name)
    if tick > 0 and (value - minimum) % tick != 0:
        raise _fail(name)


def check_new_order(params: dict[str, str], info: dict[str, Any], ref: Decimal
                    ) -> tuple[str, str, Decimal, Decimal, Decimal | None]:
    """(side, type, quantity, price, quoteOrderQty) of a valid new order, else the ApiError Binance gives."""
    side, kind = params.get("side"), params.get("type")
    if not side:
        raise _missing("side")
    if side not in ("BUY", "SELL"):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'side'; legal range is 'BUY, SELL'.")
    if not kind:
        raise _missing("type")
    if kind not in ("MARKET", "LIMIT"):
        raise ApiError(400, -1116, "Invalid orderType.")
    filters = {f["filterType"]: f for f in info["filters"]}
    qty, price, quote_qty = _decimal(params, "quantity"), _decimal(params, "price"), _decimal(params, "quoteOrderQty")
    if kind == "LIMIT":
        for name, value in (("timeInForce", params.get("timeInForce")), ("quantity", qty), ("price", price)):
            if value in (None, ""):
                raise _missing(name)
    elif qty is None and quote_qty is None:
        raise ApiError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
    if kind == "MARKET" and qty is None and quote_qty is not None:  # spend quoteOrderQty at the reference price
        step = Decimal(filters.get("LOT_SIZE", {}).get("stepSize", "0.00000001")) or Decimal("0.00000001")
        qty = (quote_qty / ref / step).to_integral_value(ROUND_DOWN) * step
    assert qty is not None
    if qty <= 0:
        raise _fail("LOT_SIZE")
    if kind == "LIMIT":
        assert price is not None
        if "PRICE_FILTER" in filters:
            _check_grid(price, filters["PRICE_FILTER"], "minPrice", "maxPrice", "tickSize", "PRICE_FILTER")
    if "LOT_SIZE" in filters:
        _check_grid(qty, filters["LOT_SIZE"], "minQty", "maxQty", "stepSize", "LOT_SIZE")
    if kind == "MARKET" and "MARKET_LOT_SIZE" in filters:
        _check_grid(qty, filters["MARKET_LOT_SIZE"], "minQty", "maxQty", "stepSize", "MARKET_LOT_SIZE")
    notional = qty * (price if kind == "LIMIT" and price is not None else ref)
    market = kind == "MARKET"
    if "NOTIONAL" in filters:
        spec = filters["NOTIONAL"]
        if (not market or spec.get("applyMinToMarket")) and notional < Decimal(spec["minNotional"]):
            raise _fail("NOTIONAL")
        if (not market or spec.get("applyMaxToMarket")) and notional > Decimal(spec["maxNotional"]):
            raise _fail("NOTIONAL")
    if "MIN_NOTIONAL" in filters:
        spec = filters["MIN_NOTIONAL"]
        if (not market or spec.get("applyToMarket")) and notional < Decimal(spec["minNotional"]):
            raise _fail("MIN_NOTIONAL")
    return side, kind, qty, price or ZERO, quote_qty
