"""Loopback fake of the Binance Spot REST API (see server.py for the design, market.py for klines)."""

from tests.fakes.binance.market import KlineSeries, add_series
from tests.fakes.binance.process import FakeBinanceProcess
from tests.fakes.binance.server import ApiError, FakeBinance, Fault

__all__ = ["ApiError", "FakeBinance", "FakeBinanceProcess", "Fault", "KlineSeries", "add_series"]
