"""Backtesting engines a user would pick instead of `coin trade --mode replay`, on the same bars,
the same fees and slippage, and a VolTarget rebalancing strategy.

- backtrader (event-driven, pure Python): a Strategy whose `next` keeps the same realised
  volatility (root mean square of log returns over `window` bars, annualised), the same target
  weight rule and rebalance band as coin's VolTarget, and calls `order_target_percent`; market
  orders fill at the next bar's open (backtrader's default, and coin's rule). Fractional sizes
  through a CommissionInfo (backtrader sizes in whole units by default: 0 BTC).
- vectorbt `Portfolio.from_orders` (vectorised, numba): coin's own target weights at the bars
  where coin traded, as `targetpercent` orders at the open: the vectorised bound, and the check
  that both account the same way.
- nautilus_trader's BacktestEngine: not installable alongside coin (every release requires
  pandas<3; coin runs pandas 3), reported as such.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

NAUTILUS_REASON = ("not installable alongside coin's dependencies: nautilus_trader 1.211-1.221 all require "
                   "pandas<3, coin runs pandas 3.1")


def nautilus_available() -> str | None:
    try:
        import nautilus_trader  # noqa: F401
    except ImportError:
        return NAUTILUS_REASON
    return None


def backtrader_run(frame: Any, *, fee: float, slippage: float, cash: float, target_vol: float, window: int,
                   bars_per_year: float, band: float, max_weight: float = 1.0) -> dict[str, float] | str:
    """Seconds for cerebro.run over the bars (feed built outside the timing) and the final value."""
    try:
        import backtrader as bt
    except ImportError as exc:
        return f"backtrader not installed ({exc}); pip install -e '.[bench]'"
    import pandas as pd

    annualise = math.sqrt(bars_per_year)

    class Fractional(bt.CommInfoBase):
        params = (("commission", fee), ("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC),
                  ("percabs", True))

        def getsize(self, price: float, cash: float) -> float:
            return self.p.leverage * (cash / price)

    class VolTargetStrategy(bt.Strategy):
        def __init__(self) -> None:
            self.prev = math.nan
            self.squares: deque[float] = deque(maxlen=window)
            self.total = 0.0

        def next(self) -> None:
            close = self.data.close[0]
            if self.prev == self.prev:
                r = math.log(close / self.prev)
                if len(self.squares) == window:
                    self.total -= self.squares[0]
                self.squares.append(r * r)
                self.total += r * r
            self.prev = close
            if len(self.squares) < window:
                return
            vol = math.sqrt(max(self.total, 0.0) / window)
            target = max_weight if vol <= 0.0 else min(max_weight, target_vol / (vol * annualise))
            value = self.broker.getvalue()
            weight = self.position.size * close / value if value > 0 else 0.0
            if band > 0.0 and weight > 0.0 and abs(target - weight) <= band:
                return
            self.order_target_percent(target=target)

    df = frame[["open", "high", "low", "close", "volume"]].copy()
    df.index = pd.to_datetime(frame["open_time"], unit="ms")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df))
    cerebro.addstrategy(VolTargetStrategy)
    cerebro.broker.setcash(cash)
    cerebro.broker.addcommissioninfo(Fractional())
    cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_match=True, slip_out=False)
    started = time.perf_counter()
    cerebro.run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "equity": float(cerebro.broker.getvalue())}


def vectorbt_run(frame: Any, targets: Any, *, fee: float, slippage: float, cash: float,
                 lot_step: float) -> dict[str, float] | str:
    """from_orders on coin's target weights (NaN = no order) filled at the open."""
    try:
        import binance  # noqa: F401  (imported first: vectorbt's own import of it fails on a warning filter)
        import vectorbt as vbt
    except ImportError as exc:
        return f"vectorbt not installed ({exc}); pip install -e '.[bench]'"
    started = time.perf_counter()
    pf = vbt.Portfolio.from_orders(close=frame["close"].to_numpy(), size=targets, size_type="targetpercent",
                                   price=frame["open"].to_numpy(), fees=fee, slippage=slippage, init_cash=cash,
                                   size_granularity=lot_step, freq="1min")
    value = float(pf.final_value())
    return {"seconds": time.perf_counter() - started, "equity": value, "trades": int(pf.orders.count())}


def vectorbt_fills(frame: Any, qty: Any, price: Any, *, fee: float, cash: float) -> float | str:
    """from_orders on coin's own fills (signed quantity and fill price per bar): the accounting check."""
    try:
        import binance  # noqa: F401
        import vectorbt as vbt
    except ImportError as exc:
        return f"vectorbt not installed ({exc})"
    pf = vbt.Portfolio.from_orders(close=frame["close"].to_numpy(), size=qty, size_type="amount", price=price,
                                   fees=fee, init_cash=cash, freq="1min")
    return float(pf.final_value())
