"""Loopback fake of Binance Spot: REST (server.py core, market.py klines, exchange_info.py) and the
market streams (streams.py, faults in faults.py). README.md in this folder documents it."""

from tests.fakes.binance.candles import CandleSeries, KlineSeries
from tests.fakes.binance.exchange_info import set_filters, symbol_info
from tests.fakes.binance.market import add_candles, add_series, get_series
from tests.fakes.binance.process import FakeBinanceProcess
from tests.fakes.binance.server import ApiError, FakeBinance, Fault

__all__ = ["ApiError", "CandleSeries", "FakeBinance", "FakeBinanceProcess", "Fault", "KlineSeries", "add_candles",
           "add_series", "get_series", "set_filters", "symbol_info"]
