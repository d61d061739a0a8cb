"""GET /api/v3/exchangeInfo of the fake, built like payloads/rest_exchangeInfo_symbol.json.

Every symbol the fake knows (a registered series, or `fake.state["symbols"]`) is listed with the
template's filters; `set_filters` changes them per symbol: a dict updates (or adds) that filter, None
removes it. `min_notional=` adds the legacy MIN_NOTIONAL filter (absent by default, as on live
symbols that carry NOTIONAL). Example: `set_filters(fake, "BTCUSDT", market_lot_size={"stepSize":
"0.00000000"}, notional=None, min_notional={"minNotional": "5.00000000"})`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.fakes.binance.server import CONTROL_ACTIONS, MODULES, ApiError, FakeBinance

PAYLOADS = Path(__file__).resolve().parent / "payloads"
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
FILTER_NAMES = {"price_filter": "PRICE_FILTER", "lot_size": "LOT_SIZE", "market_lot_size": "MARKET_LOT_SIZE",
                "notional": "NOTIONAL", "min_notional": "MIN_NOTIONAL",
                "percent_price_by_side": "PERCENT_PRICE_BY_SIDE", "max_num_orders": "MAX_NUM_ORDERS",
                "iceberg_parts": "ICEBERG_PARTS"}


def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def symbol_info(fake: FakeBinance, symbol: str) -> dict[str, Any]:
    """The exchangeInfo entry of `symbol` as the fake serves it (filters as configured)."""
    template = _load("rest_exchangeInfo_symbol.json")["symbols"][0]
    info = copy.deepcopy(template)
    quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), symbol[-4:])
    info.update({"symbol": symbol, "baseAsset": symbol[: -len(quote)], "quoteAsset": quote})
    info.update(fake.state.get("symbol_overrides", {}).get(symbol, {}))
    filters = fake.state.get("filters", {}).get(symbol)
    if filters is not None:
        info["filters"] = copy.deepcopy(filters)
    return info


def set_filters(fake: FakeBinance, symbol: str, **changes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Update, add or (value None) remove filters of `symbol`; keys as in FILTER_NAMES or a filterType.
    Other keyword `status=` etc. is not a filter: use `fake.state["symbol_overrides"]`."""
    symbol = symbol.upper()
    current = {f["filterType"]: f for f in symbol_info(fake, symbol)["filters"]}
    for key, change in changes.items():
        name = FILTER_NAMES.get(key, key)
        if change is None:
            current.pop(name, None)
            continue
        base = current.get(name) or (_load("rest_filter_MIN_NOTIONAL.json") if name == "MIN_NOTIONAL"
                                     else {"filterType": name})
        current[name] = {**base, **change, "filterType": name}
    filters = list(current.values())
    fake.state.setdefault("filters", {})[symbol] = filters
    return filters


def known_symbols(fake: FakeBinance) -> list[str]:
    return sorted({sym for sym, _ in fake.state.get("series", {})} | set(fake.state.get("symbols", ())))


def install(fake: FakeBinance) -> None:
    @fake.endpoint("GET", "/api/v3/exchangeInfo", weight=20)
    async def exchange_info(request: Any, params: dict[str, str]) -> dict[str, Any]:
        try:
            wanted = [params["symbol"]] if "symbol" in params else json.loads(params.get("symbols") or "null")
        except json.JSONDecodeError:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'; legal range is "
                           "'^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
        symbols = known_symbols(fake)
        if wanted:
            if any(s not in symbols for s in wanted):
                raise ApiError(400, -1121, "Invalid symbol.")
            symbols = list(wanted)
        info = _load("rest_exchangeInfo_symbol.json")
        info["serverTime"] = fake.server_time_ms()
        info["symbols"] = [symbol_info(fake, s) for s in symbols]
        return info


def _control_filters(fake: FakeBinance, body: dict[str, Any]) -> Any:
    body = dict(body)
    return set_filters(fake, body.pop("symbol"), **body)


MODULES["exchange_info"] = install
CONTROL_ACTIONS["filters"] = _control_filters
