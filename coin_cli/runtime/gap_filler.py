"""GapFiller: closed candles only, de-duplicated by open time, strictly in order; a gap is filled
from a candle provider, in order, before the bar after it is processed.

The provider is the candle store for a replay (which can only return what the store has: real
exchange gaps stay gaps, exactly as TradingEnv sees them) and Binance REST klines for a live
stream (a later issue). The next expected open is `close_time + 1` of the last bar, which is also
right for calendar-month candles.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from coin_cli.errors import CoinError

if TYPE_CHECKING:
    from coin_cli.runtime.events import Candle
    from coin_cli.runtime.sources import CandleArrays

log = logging.getLogger("coin.runtime")


class CandleProvider(Protocol):
    def closed_candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        """Closed candles with start_ms <= open_time < end_ms, in order."""
        ...


class ArrayCandleProvider:
    """Candles from arrays read out of the store (the replay's own data)."""

    def __init__(self, arrays: CandleArrays) -> None:
        self.arrays = arrays

    def closed_candles(self, start_ms: int, end_ms: int) -> list[Candle]:
        import numpy as np

        ot = self.arrays.open_time
        i = int(np.searchsorted(ot, start_ms, side="left"))
        j = int(np.searchsorted(ot, end_ms, side="left"))
        return self.arrays.candles(i, j) if j > i else []


class GapFiller:
    def __init__(self, provider: CandleProvider | None, next_open: int | None = None) -> None:
        self.provider = provider
        self.next_open = next_open      # open time the next bar must have; None: take the first one
        self.duplicates = 0
        self.not_closed = 0
        self.gaps = 0
        self.filled = 0

    def admit(self, candle: Candle) -> tuple[Candle, ...] | list[Candle]:
        """The candles to process now, in order: () for a duplicate, an old or an open candle;
        (candle,) normally; the provider's missing candles followed by `candle` after a gap."""
        if not candle.closed:
            self.not_closed += 1
            return ()
        nxt = self.next_open
        ot = candle.open_time
        if nxt is None or ot == nxt:
            self.next_open = candle.close_time + 1
            return (candle,)
        if ot < nxt:
            self.duplicates += 1
            return ()
        self.gaps += 1
        filled: list[Candle] = []
        if self.provider is not None:
            try:
                fetched = self.provider.closed_candles(nxt, ot)
            except CoinError as exc:  # process the bar we have rather than stall the loop
                log.warning("gap before bar %d not filled: %s", ot, exc)
                fetched = []
            expect = nxt
            for c in fetched:  # keep only closed, in-range, strictly increasing candles
                if c.closed and expect <= c.open_time < ot:
                    filled.append(c)
                    expect = c.close_time + 1
        self.filled += len(filled)
        if filled:
            log.info("gap before bar %d: filled %d candle(s) from %s", ot, len(filled), type(self.provider).__name__)
        self.next_open = candle.close_time + 1
        filled.append(candle)
        return filled

    def stats(self) -> dict[str, int]:
        return {"gaps": self.gaps, "gap_bars_filled": self.filled, "duplicates_dropped": self.duplicates,
                "open_candles_dropped": self.not_closed}
