"""Exchange filters of one symbol, from exchangeInfo, as Decimal (binance.md §1 "Filters").

- `parse_symbol_info(info)` -> `SymbolFilters`: LOT_SIZE, MARKET_LOT_SIZE, PRICE_FILTER, NOTIONAL and
  the legacy MIN_NOTIONAL (either may be present). Every number is a string on the wire and stays a
  Decimal here; a zero step/tick/bound means "rule off" and is never divided by.
- `save_filters` / `load_filters`: the cache `data/<exchange>/<SYMBOL>/exchange_info.json` (the
  symbol's raw exchangeInfo entry + `fetched_at`), written atomically.
- `execution_params(filters, base)`: the numbers the ExecutionModel takes (lot step, min qty, tick,
  min notional) for the orders the paper broker simulates (MARKET orders at the next bar's open).
- `SymbolFilters.quantity_str / price_str`: a Decimal string on the step, for an order sent to Binance.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.errors import DataError, ExchangeError

if TYPE_CHECKING:
    from coin_cli.env.execution import ExecutionParams

CACHE_NAME = "exchange_info.json"
ZERO = Decimal(0)


@dataclass(frozen=True)
class LotRule:
    """LOT_SIZE or MARKET_LOT_SIZE: quantity in [min_qty, max_qty] on multiples of step (0 = any)."""

    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    step: Decimal = ZERO


@dataclass(frozen=True)
class SymbolFilters:
    """The order rules of one symbol. `market_lot` is None when the symbol has no MARKET_LOT_SIZE;
    `min_notional` comes from NOTIONAL (or legacy MIN_NOTIONAL), `min_notional_market` says whether
    it applies to MARKET orders (NOTIONAL.applyMinToMarket / MIN_NOTIONAL.applyToMarket)."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    lot: LotRule
    market_lot: LotRule | None
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    min_notional_market: bool
    max_notional: Decimal
    max_notional_market: bool
    notional_source: str         # NOTIONAL, MIN_NOTIONAL or none

    @property
    def market_step(self) -> Decimal:
        """The quantity step for MARKET orders: MARKET_LOT_SIZE's, unless that is 0 (seen on live
        symbols: "no own rule") - then LOT_SIZE's."""
        if self.market_lot is not None and self.market_lot.step > 0:
            return self.market_lot.step
        return self.lot.step

    @property
    def market_min_qty(self) -> Decimal:
        lots = [self.lot.min_qty] + ([self.market_lot.min_qty] if self.market_lot is not None else [])
        return max(lots)

    def quantity_str(self, qty: Decimal | float | str, market: bool = True) -> str:
        """|qty| rounded DOWN to the (market) step, as the plain Decimal string Binance takes."""
        return _plain(_floor(_dec(qty), self.market_step if market else self.lot.step))

    def price_str(self, price: Decimal | float | str, up: bool = False) -> str:
        """`price` on the tick (down, or up with `up=True`), as a plain Decimal string."""
        value, tick = _dec(price), self.tick_size
        if tick > 0:
            value = (value / tick).to_integral_value(ROUND_UP if up else ROUND_DOWN) * tick
        return _plain(value)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (Decimals as strings): for the ledger identity and run folders."""
        def conv(v: Any) -> Any:
            if isinstance(v, Decimal):
                return _plain(v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v
        return conv(asdict(self))


def parse_symbol_info(info: dict[str, Any], where: str = "exchangeInfo") -> SymbolFilters:
    """One `symbols[]` entry of exchangeInfo -> SymbolFilters. A missing LOT_SIZE or PRICE_FILTER,
    or a number that is not a decimal, is an ExchangeError naming `where` and the field."""
    try:
        symbol = str(info["symbol"])
        filters = {f["filterType"]: f for f in info.get("filters", []) if isinstance(f, dict) and "filterType" in f}
    except (KeyError, TypeError) as exc:
        raise ExchangeError(f"{where}: malformed symbol entry ({exc})") from None

    def num(filter_type: str, key: str, default: str | None = None) -> Decimal:
        raw = filters.get(filter_type, {}).get(key, default)
        if raw is None:
            raise ExchangeError(f"{where}: {filter_type}.{key} is missing")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise ExchangeError(f"{where}: {filter_type}.{key} is not a number: {raw!r}") from None
        if not value.is_finite() or value < 0:
            raise ExchangeError(f"{where}: {filter_type}.{key} must be a finite number >= 0, got {raw!r}")
        return value

    for required in ("LOT_SIZE", "PRICE_FILTER"):
        if required not in filters:
            raise ExchangeError(f"{where}: the symbol has no {required} filter")
    lot = LotRule(num("LOT_SIZE", "minQty"), num("LOT_SIZE", "maxQty"), num("LOT_SIZE", "stepSize"))
    market_lot = None
    if "MARKET_LOT_SIZE" in filters:
        market_lot = LotRule(num("MARKET_LOT_SIZE", "minQty", "0"), num("MARKET_LOT_SIZE", "maxQty", "0"),
                             num("MARKET_LOT_SIZE", "stepSize", "0"))
    if "NOTIONAL" in filters:
        f = filters["NOTIONAL"]
        source, min_n, max_n = "NOTIONAL", num("NOTIONAL", "minNotional", "0"), num("NOTIONAL", "maxNotional", "0")
        min_market, max_market = bool(f.get("applyMinToMarket", True)), bool(f.get("applyMaxToMarket", False))
    elif "MIN_NOTIONAL" in filters:
        f = filters["MIN_NOTIONAL"]
        source, min_n, max_n = "MIN_NOTIONAL", num("MIN_NOTIONAL", "minNotional", "0"), ZERO
        min_market, max_market = bool(f.get("applyToMarket", True)), False
    else:
        source, min_n, max_n, min_market, max_market = "none", ZERO, ZERO, False, False
    return SymbolFilters(
        symbol=symbol, status=str(info.get("status", "")), base_asset=str(info.get("baseAsset", "")),
        quote_asset=str(info.get("quoteAsset", "")), lot=lot, market_lot=market_lot,
        tick_size=num("PRICE_FILTER", "tickSize"), min_price=num("PRICE_FILTER", "minPrice", "0"),
        max_price=num("PRICE_FILTER", "maxPrice", "0"), min_notional=min_n, min_notional_market=min_market,
        max_notional=max_n, max_notional_market=max_market, notional_source=source)


def execution_params(filters: SymbolFilters, base: ExecutionParams) -> ExecutionParams:
    """`base` (fees, slippage, long_only from settings.env) with the exchange's numbers for MARKET
    orders: lot step (MARKET_LOT_SIZE, LOT_SIZE when that step is 0), the larger min qty of both lot
    rules, the tick, and the min notional when it applies to MARKET orders (else 0: Binance would
    accept the order)."""
    min_notional = filters.min_notional if filters.min_notional_market else ZERO
    return replace(base, lot_step=float(filters.market_step), min_qty=float(filters.market_min_qty),
                   tick_size=float(filters.tick_size), min_notional=float(min_notional))


# ---- the cache ---------------------------------------------------------------------------------

def cache_path(data_dir: Path, exchange: str, symbol: str) -> Path:
    return Path(data_dir) / exchange / symbol.upper() / CACHE_NAME


def save_filters(path: Path, info: dict[str, Any], fetched_at_ms: int | None = None) -> None:
    """Write the symbol's raw exchangeInfo entry with `fetched_at` (ms and ISO), atomically."""
    from coin_cli.data.schema import ms_to_iso
    from coin_cli.fsio import atomic_write_json

    fetched = int(time.time() * 1000) if fetched_at_ms is None else int(fetched_at_ms)
    atomic_write_json(path, {"fetched_at_ms": fetched, "fetched_at": ms_to_iso(fetched), "symbol": info})


def load_filters(path: Path, max_age_s: float | None = None) -> tuple[SymbolFilters, int] | None:
    """(filters, fetched_at_ms) from the cache; None when absent or older than `max_age_s`.
    A corrupt cache file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        fetched = int(doc["fetched_at_ms"])
        info = doc["symbol"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a readable exchange_info cache ({exc}); delete it to fetch again") from None
    if max_age_s is not None and time.time() * 1000 - fetched > max_age_s * 1000:
        return None
    try:
        return parse_symbol_info(info, where=str(path)), fetched
    except ExchangeError as exc:
        raise DataError(str(exc)) from None


async def fetch_filters(rest: Any, symbol: str, path: Path | None = None) -> SymbolFilters:
    """exchangeInfo for `symbol` through a connected BinanceRESTClient, cached at `path` when given."""
    info = await rest.exchange_info_raw(symbol)
    filters = parse_symbol_info(info, where=f"{rest.api_url}/v3/exchangeInfo {symbol}")
    if path is not None:
        save_filters(path, info, rest.server_now_ms())
    return filters


def _dec(value: Decimal | float | str) -> Decimal:
    # floats go through repr: Decimal(0.1) would carry the binary error into the order
    return value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else str(value))


def _floor(value: Decimal, step: Decimal) -> Decimal:
    value = abs(value)
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_DOWN) * step


def _plain(value: Decimal) -> str:
    """Fixed-point text without exponent or trailing zeros (Binance rejects 1E-5)."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
